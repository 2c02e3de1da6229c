// Binding of the CPU nearest-neighbour kernel (contract in csrc/knn.h). Arguments are numpy
// arrays (fe_fast.ops.knn passes tensor.numpy() of contiguous CPU tensors; outputs are allocated
// by the caller), checked here before the kernel runs (python/array_checks.h): ranks, sizes,
// dtypes, C-contiguity, writable outputs, and the lengths and counts the kernel indexes with.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "array_checks.h"
#include "knn.h"

namespace py = pybind11;
using namespace fe_fast_bind;

namespace {

constexpr const char* kFn = "knn";

template <typename T>
void run_knn(const py::array& x, const py::array& y, int64_t B, int64_t N, int64_t M, int64_t D,
             bool shared, const py::array& x_len, const py::array& y_len, const py::array& k,
             bool has_k, py::array& idx, py::array& dist2, py::array& sel) {
  const T* xp = cptr<T>(x);
  const T* yp = cptr<T>(y);
  const int64_t* xl = cptr<int64_t>(x_len);
  const int64_t* yl = cptr<int64_t>(y_len);
  const int64_t* kp = cptr<int64_t>(k, has_k);
  int64_t* ip = mptr<int64_t>(idx);
  T* dp = mptr<T>(dist2);
  uint8_t* sp = mptr<uint8_t>(sel, has_k);
  py::gil_scoped_release release;
  fe_fast::knn_cpu<T>(xp, yp, B, N, M, D, shared, xl, yl, kp, ip, dp, sp);
}

}  // namespace

void bind_knn(py::module_& m) {
  m.def(
      "knn",
      [](py::object x_, py::object y_, py::object x_len_, py::object y_len_, py::object k_,
         py::object idx_, py::object dist2_, py::object sel_) {
        py::array x = array_arg(kFn, "x", x_), y = array_arg(kFn, "y", y_);
        py::array x_len = array_arg(kFn, "x_len", x_len_), y_len = array_arg(kFn, "y_len", y_len_);
        py::array idx = array_arg(kFn, "idx", idx_), dist2 = array_arg(kFn, "dist2", dist2_);
        py::array k, sel;
        const bool has_k = optional_arg(kFn, "k", k_, k);
        const bool has_sel = optional_arg(kFn, "sel", sel_, sel);
        if (has_k != has_sel) fail(kFn, "k and sel must be given together (or both None)");
        if (x.ndim() != 3) fail(kFn, "x must have shape [B, N, D], got " + shape_str(x));
        const Kind f = float_kind(kFn, "x", x);
        const int64_t B = x.shape(0), N = x.shape(1), D = x.shape(2);
        if (D != 2 && D != 3) fail(kFn, "D must be 2 or 3, got " + std::to_string(D));
        const bool shared = y.ndim() == 2;
        if (y.ndim() != 2 && y.ndim() != 3) {
          fail(kFn, "y must have shape [B, M, D] or [M, D], got " + shape_str(y));
        }
        const int64_t M = y.shape(y.ndim() - 2);
        check(kFn, "x", x, f, {B, N, D});
        if (shared) {
          check(kFn, "y", y, f, {M, D});
        } else {
          check(kFn, "y", y, f, {B, M, D});
        }
        check(kFn, "x_len", x_len, Kind::i64, {B});
        check(kFn, "y_len", y_len, Kind::i64, {B});
        check_out(kFn, "idx", idx, Kind::i64, {B, N});
        check_out(kFn, "dist2", dist2, f, {B, N});
        if (has_k) {
          check(kFn, "k", k, Kind::i64, {B});
          check_out(kFn, "sel", sel, Kind::u8, {B, N});
        }
        check_disjoint(kFn, {{"idx", idx}, {"dist2", dist2}, {"sel", sel}},
                       {{"x", x}, {"y", y}, {"x_len", x_len}, {"y_len", y_len}, {"k", k}});
        // The kernel indexes with these: out of range would read out of bounds.
        const int64_t* xl = cptr<int64_t>(x_len);
        const int64_t* yl = cptr<int64_t>(y_len);
        const int64_t* kp = cptr<int64_t>(k, has_k);
        for (int64_t b = 0; b < B; ++b) {
          if (xl[b] < 0 || xl[b] > N) {
            fail(kFn, "x_len[" + std::to_string(b) + "] = " + std::to_string(xl[b]) +
                          " is outside [0, N=" + std::to_string(N) + "]");
          }
          if (yl[b] < 1 || yl[b] > M) {
            fail(kFn, "y_len[" + std::to_string(b) + "] = " + std::to_string(yl[b]) +
                          " is outside [1, M=" + std::to_string(M) + "]");
          }
          if (kp && kp[b] < 0) {
            fail(kFn, "k[" + std::to_string(b) + "] = " + std::to_string(kp[b]) + " is negative");
          }
        }
        if (f == Kind::f64) {
          run_knn<double>(x, y, B, N, M, D, shared, x_len, y_len, k, has_k, idx, dist2, sel);
        } else {
          run_knn<float>(x, y, B, N, M, D, shared, x_len, y_len, k, has_k, idx, dist2, sel);
        }
      },
      py::arg("x"), py::arg("y"), py::arg("x_len"), py::arg("y_len"), py::arg("k"),
      py::arg("idx"), py::arg("dist2"), py::arg("sel"),
      "Nearest neighbour with optional top-k selection (contract in csrc/knn.h).\n"
      "x [B, N, D] float32/float64 (D in {2, 3}); y [B, M, D] or [M, D] (shared), x's dtype;\n"
      "x_len, y_len int64 [B] (0 <= x_len <= N, 1 <= y_len <= M); k int64 [B] or None;\n"
      "outputs idx int64 [B, N], dist2 [B, N], sel bool/uint8 [B, N] (None iff k is None).\n"
      "All numpy arrays, C-contiguous; outputs writable. Raises ValueError on any mismatch.");
}
