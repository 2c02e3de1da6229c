// The dtype kinds the bindings accept and their names in error messages, shared by the CPU
// argument checks (python/array_checks.h, numpy arrays) and the CUDA ones
// (python/cuda/dlpack_checks.h, DLPack capsules); each header maps its own dtype description onto
// a Kind.
#pragma once

namespace fe_fast_kind {

enum class Kind { f32, f64, i64, u8 };  // u8 accepts bool and uint8 (1-byte masks)

inline const char* kind_name(Kind k) {
  switch (k) {
    case Kind::f32: return "float32";
    case Kind::f64: return "float64";
    case Kind::i64: return "int64";
    default: return "bool/uint8";
  }
}

}  // namespace fe_fast_kind
