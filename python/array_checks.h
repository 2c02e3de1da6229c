// Argument checks shared by the CPU bindings (python/bind_*.cpp).
//
// The bindings take numpy arrays (the callers pass ``tensor.numpy()`` of contiguous CPU tensors:
// zero-copy), so every argument carries its own shape, dtype, strides and writability, and a
// binding checks all of them before any pointer reaches a kernel. A failed check throws
// pybind11::value_error (Python ValueError) naming the argument; nothing is read or written.
// No torch headers: the build stays independent of torch's ABI.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "dtype_kind.h"

namespace fe_fast_bind {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + "]";
}

[[noreturn]] inline void fail(const std::string& fn, const std::string& msg) {
  throw py::value_error(fn + ": " + msg);
}

// A numpy array (no conversion: a list or a tensor would be copied and an output lost).
inline py::array array_arg(const char* fn, const char* name, const py::object& obj) {
  if (!py::isinstance<py::array>(obj)) {
    fail(fn, std::string(name) + " must be a numpy array (tensor.numpy()), got " +
                 std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return py::reinterpret_borrow<py::array>(obj);
}

// Same, or an empty (absent) array when obj is None.
inline bool optional_arg(const char* fn, const char* name, const py::object& obj, py::array& out) {
  if (obj.is_none()) return false;
  out = array_arg(fn, name, obj);
  return true;
}

using fe_fast_kind::Kind;  // python/dtype_kind.h
using fe_fast_kind::kind_name;

inline bool has_kind(const py::array& a, Kind k) {
  const py::dtype dt = a.dtype();
  switch (k) {
    case Kind::f32: return dt.kind() == 'f' && dt.itemsize() == 4;
    case Kind::f64: return dt.kind() == 'f' && dt.itemsize() == 8;
    case Kind::i64: return dt.kind() == 'i' && dt.itemsize() == 8;
    default: return (dt.kind() == 'b' || dt.kind() == 'u') && dt.itemsize() == 1;
  }
}

// Float kind of a (float32 or float64) or a ValueError.
inline Kind float_kind(const char* fn, const char* name, const py::array& a) {
  if (has_kind(a, Kind::f32)) return Kind::f32;
  if (has_kind(a, Kind::f64)) return Kind::f64;
  fail(fn, std::string(name) + " must be float32 or float64, got " + std::string(py::str(a.dtype())));
}

// Shape, dtype and C-contiguity of one array; dims of -1 are free (returned through `got`).
inline void check(const char* fn, const char* name, const py::array& a, Kind kind,
                  std::initializer_list<int64_t> dims, bool writable = false) {
  if (!has_kind(a, kind)) {
    fail(fn, std::string(name) + " must be " + kind_name(kind) + ", got " +
                 std::string(py::str(a.dtype())));
  }
  bool ok = a.ndim() == static_cast<py::ssize_t>(dims.size());
  if (ok) {
    py::ssize_t i = 0;
    for (int64_t d : dims) {
      if (d >= 0 && a.shape(i) != d) ok = false;
      ++i;
    }
  }
  if (!ok) {
    std::string want = "[";
    py::ssize_t i = 0;
    for (int64_t d : dims) {
      if (i++) want += ", ";
      want += d >= 0 ? std::to_string(d) : std::string("*");
    }
    fail(fn, std::string(name) + " must have shape " + want + "], got " + shape_str(a));
  }
  if (!(a.flags() & py::array::c_style)) {
    fail(fn, std::string(name) + " must be C-contiguous (call .contiguous() on the tensor)");
  }
  if (writable && !a.writeable()) fail(fn, std::string(name) + " is an output and must be writable");
}

inline void check_out(const char* fn, const char* name, const py::array& a, Kind kind,
                      std::initializer_list<int64_t> dims) {
  check(fn, name, a, kind, dims, true);
}

// An output must not share memory with an input or another output: the kernels read inputs while
// writing outputs (and write outputs in parallel), so overlapping buffers give wrong results
// without an error. Absent optional arrays (empty) never overlap.
struct Named {
  const char* name;
  const py::array& a;
};

inline bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data());
  const auto b0 = reinterpret_cast<std::uintptr_t>(b.data());
  return a0 < b0 + static_cast<std::uintptr_t>(b.nbytes()) &&
         b0 < a0 + static_cast<std::uintptr_t>(a.nbytes());
}

inline void check_disjoint(const char* fn, std::initializer_list<Named> outputs,
                           std::initializer_list<Named> inputs) {
  for (auto o = outputs.begin(); o != outputs.end(); ++o) {
    for (const Named& i : inputs) {
      if (overlaps(o->a, i.a)) {
        fail(fn, std::string("output ") + o->name + " shares memory with input " + i.name);
      }
    }
    for (auto o2 = std::next(o); o2 != outputs.end(); ++o2) {
      if (overlaps(o->a, o2->a)) {
        fail(fn, std::string("outputs ") + o->name + " and " + o2->name + " share memory");
      }
    }
  }
}

template <typename T>
inline const T* cptr(const py::array& a, bool present = true) {
  return present ? static_cast<const T*>(a.data()) : nullptr;
}

template <typename T>
inline T* mptr(py::array& a, bool present = true) {
  return present ? static_cast<T*>(a.mutable_data()) : nullptr;
}

}  // namespace fe_fast_bind
