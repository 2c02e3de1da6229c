// Argument checks of the CUDA bindings (python/cuda/bind_*.cpp): every tensor argument is a DLPack
// capsule (``tensor.__dlpack__(stream=...)``), so it carries its device, dtype, shape and strides,
// and a binding checks them before any pointer reaches a kernel. A failed check throws
// pybind11::value_error (Python ValueError) naming the argument. The capsule is only read, never
// consumed: its producer keeps ownership and frees it with the capsule.
//
// The structs below are the DLPack ABI (v0.8, unversioned "dltensor" capsules, the default of
// ``__dlpack__()`` without max_version), declared here so that the build needs neither torch nor
// a dlpack package.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "../dtype_kind.h"

namespace fe_fast_dl {

namespace py = pybind11;

extern "C" {
typedef enum { kDLCPU = 1, kDLCUDA = 2, kDLCUDAHost = 3, kDLCUDAManaged = 13 } DLDeviceType;
typedef struct {
  int32_t device_type;
  int32_t device_id;
} DLDevice;
typedef enum { kDLInt = 0U, kDLUInt = 1U, kDLFloat = 2U, kDLBool = 6U } DLDataTypeCode;
typedef struct {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} DLDataType;
typedef struct {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(struct DLManagedTensor* self);
} DLManagedTensor;
}

[[noreturn]] inline void fail(const std::string& fn, const std::string& msg) {
  throw py::value_error(fn + ": " + msg);
}

using fe_fast_kind::Kind;  // python/dtype_kind.h
using fe_fast_kind::kind_name;

// A borrowed view of one capsule's tensor.
struct View {
  const DLTensor* t = nullptr;
  bool present() const { return t != nullptr; }
  int64_t dim(int i) const { return t->shape[i]; }
  Kind kind() const {
    if (t->dtype.code == kDLFloat && t->dtype.bits == 32) return Kind::f32;
    return Kind::f64;  // only called after a float check
  }
  template <typename T>
  T* ptr() const {
    return t ? reinterpret_cast<T*>(static_cast<char*>(t->data) + t->byte_offset) : nullptr;
  }
};

inline std::string shape_str(const DLTensor* t) {
  std::string s = "[";
  for (int32_t i = 0; i < t->ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(t->shape[i]);
  }
  return s + "]";
}

inline bool has_kind(const DLTensor* t, Kind k) {
  if (t->dtype.lanes != 1) return false;
  switch (k) {
    case Kind::f32: return t->dtype.code == kDLFloat && t->dtype.bits == 32;
    case Kind::f64: return t->dtype.code == kDLFloat && t->dtype.bits == 64;
    case Kind::i64: return t->dtype.code == kDLInt && t->dtype.bits == 64;
    default:
      return (t->dtype.code == kDLBool || t->dtype.code == kDLUInt) && t->dtype.bits == 8;
  }
}

// Reads a capsule (None -> absent when optional), checks it is a CUDA tensor on `device` (-1:
// any; set to the first tensor's device otherwise).
inline View view(const char* fn, const char* name, const py::object& obj, int32_t& device,
                 bool optional = false) {
  View v;
  if (obj.is_none()) {
    if (optional) return v;
    fail(fn, std::string(name) + " is required");
  }
  if (!PyCapsule_CheckExact(obj.ptr()) || !PyCapsule_IsValid(obj.ptr(), "dltensor")) {
    fail(fn, std::string(name) + " must be an unused DLPack capsule (tensor.__dlpack__(stream=...))");
  }
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(obj.ptr(), "dltensor"));
  if (m == nullptr) throw py::error_already_set();
  v.t = &m->dl_tensor;
  if (v.t->device.device_type != kDLCUDA) {
    fail(fn, std::string(name) + " must be a CUDA tensor (DLPack device type " +
                 std::to_string(v.t->device.device_type) + ")");
  }
  if (device < 0) {
    device = v.t->device.device_id;
  } else if (v.t->device.device_id != device) {
    fail(fn, std::string(name) + " is on cuda:" + std::to_string(v.t->device.device_id) +
                 ", the other tensors on cuda:" + std::to_string(device));
  }
  return v;
}

// dtype, shape (dims of -1 free) and C-contiguity (strides null or row-major; size-1 dims free).
inline void check(const char* fn, const char* name, const View& v, Kind kind,
                  std::initializer_list<int64_t> dims) {
  const DLTensor* t = v.t;
  if (!has_kind(t, kind)) {
    fail(fn, std::string(name) + " must be " + kind_name(kind) + " (DLPack code " +
                 std::to_string(t->dtype.code) + ", bits " + std::to_string(t->dtype.bits) + ")");
  }
  bool ok = t->ndim == static_cast<int32_t>(dims.size());
  if (ok) {
    int i = 0;
    for (int64_t d : dims) {
      if (d >= 0 && t->shape[i] != d) ok = false;
      ++i;
    }
  }
  if (!ok) {
    std::string want = "[";
    int i = 0;
    for (int64_t d : dims) {
      if (i++) want += ", ";
      want += d >= 0 ? std::to_string(d) : std::string("*");
    }
    fail(fn, std::string(name) + " must have shape " + want + "], got " + shape_str(t));
  }
  if (t->strides != nullptr) {
    int64_t expect = 1;
    for (int32_t i = t->ndim - 1; i >= 0; --i) {
      if (t->shape[i] != 1 && t->strides[i] != expect) {
        fail(fn, std::string(name) + " must be contiguous (call .contiguous() on the tensor)");
      }
      expect *= t->shape[i];
    }
  }
}

}  // namespace fe_fast_dl
