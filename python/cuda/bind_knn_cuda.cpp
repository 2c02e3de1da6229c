// Binding of the CUDA nearest-neighbour kernel. Tensor arguments are DLPack capsules
// (``tensor.__dlpack__(stream=...)``), checked here (python/cuda/dlpack_checks.h): CUDA device,
// one device for all, ranks, sizes, dtypes, contiguity. The launch is asynchronous on `stream`
// (torch.cuda.current_stream().cuda_stream) on the tensors' device. The lengths and counts live on
// the GPU and are not read here: fe_fast.ops.knn checks their range before the call.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "dlpack_checks.h"
#include "knn_cuda.h"

namespace py = pybind11;
using namespace fe_fast_dl;

void bind_knn_cuda(py::module_& m) {
  m.def(
      "knn",
      [](py::object x_, py::object y_, py::object x_len_, py::object y_len_, py::object k_,
         py::object idx_, py::object dist2_, py::object sel_, std::uintptr_t stream) {
        const char* fn = "knn";
        int32_t dev = -1;
        View x = view(fn, "x", x_, dev), y = view(fn, "y", y_, dev);
        View x_len = view(fn, "x_len", x_len_, dev), y_len = view(fn, "y_len", y_len_, dev);
        View k = view(fn, "k", k_, dev, true);
        View idx = view(fn, "idx", idx_, dev), dist2 = view(fn, "dist2", dist2_, dev);
        View sel = view(fn, "sel", sel_, dev, true);
        if (k.present() != sel.present()) fail(fn, "k and sel must be given together (or both None)");
        if (x.t->ndim != 3) fail(fn, "x must have shape [B, N, D], got " + shape_str(x.t));
        if (!has_kind(x.t, Kind::f32) && !has_kind(x.t, Kind::f64)) {
          fail(fn, "x must be float32 or float64");
        }
        const Kind f = x.kind();
        const int64_t B = x.dim(0), N = x.dim(1), D = x.dim(2);
        if (D != 2 && D != 3) fail(fn, "D must be 2 or 3, got " + std::to_string(D));
        if (y.t->ndim != 2 && y.t->ndim != 3) {
          fail(fn, "y must have shape [B, M, D] or [M, D], got " + shape_str(y.t));
        }
        const bool shared = y.t->ndim == 2;
        const int64_t M = y.dim(y.t->ndim - 2);
        check(fn, "x", x, f, {B, N, D});
        if (shared) {
          check(fn, "y", y, f, {M, D});
        } else {
          check(fn, "y", y, f, {B, M, D});
        }
        check(fn, "x_len", x_len, Kind::i64, {B});
        check(fn, "y_len", y_len, Kind::i64, {B});
        check(fn, "idx", idx, Kind::i64, {B, N});
        check(fn, "dist2", dist2, f, {B, N});
        if (k.present()) {
          check(fn, "k", k, Kind::i64, {B});
          check(fn, "sel", sel, Kind::u8, {B, N});
        }
        if (B > 0 && N > 0 && M == 0) fail(fn, "y is an empty cloud (M = 0)");
        auto s = reinterpret_cast<cudaStream_t>(stream);
        py::gil_scoped_release release;
        int prev = 0;
        cudaGetDevice(&prev);
        if (prev != dev) cudaSetDevice(dev);
        try {
          if (f == Kind::f64) {
            fe_fast::knn_cuda<double>(x.ptr<const double>(), y.ptr<const double>(), B, N, M, D, shared,
                                      x_len.ptr<const int64_t>(), y_len.ptr<const int64_t>(),
                                      k.ptr<const int64_t>(), idx.ptr<int64_t>(), dist2.ptr<double>(),
                                      sel.ptr<uint8_t>(), s);
          } else {
            fe_fast::knn_cuda<float>(x.ptr<const float>(), y.ptr<const float>(), B, N, M, D, shared,
                                     x_len.ptr<const int64_t>(), y_len.ptr<const int64_t>(),
                                     k.ptr<const int64_t>(), idx.ptr<int64_t>(), dist2.ptr<float>(),
                                     sel.ptr<uint8_t>(), s);
          }
        } catch (...) {
          if (prev != dev) cudaSetDevice(prev);
          throw;
        }
        if (prev != dev) cudaSetDevice(prev);
      },
      py::arg("x"), py::arg("y"), py::arg("x_len"), py::arg("y_len"), py::arg("k"),
      py::arg("idx"), py::arg("dist2"), py::arg("sel"), py::arg("stream"),
      "Nearest neighbour with optional top-k selection on the GPU (contract in csrc/knn.h).\n"
      "Every tensor a DLPack capsule of a contiguous CUDA tensor, all on one device: x [B, N, D]\n"
      "float32/float64 (D in {2, 3}); y [B, M, D] or [M, D] (shared); x_len, y_len int64 [B];\n"
      "k int64 [B] or None; outputs idx int64 [B, N], dist2 [B, N], sel bool/uint8 [B, N] (None\n"
      "iff k is None). Launched asynchronously on `stream`. Raises ValueError on any mismatch.");
}
