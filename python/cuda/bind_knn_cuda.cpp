// Binding of the CUDA nearest-neighbour kernel: raw device pointers plus the caller's stream
// (torch.cuda.current_stream().cuda_stream). The launch is asynchronous on that stream; the caller
// (fe_fast.ops._knn_cuda) validates shapes, dtypes, devices and contiguity and makes the tensors'
// device current.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "knn_cuda.h"

namespace py = pybind11;

template <typename T>
static T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void bind_knn_cuda(py::module_& m) {
  m.def(
      "knn",
      [](std::uintptr_t x, std::uintptr_t y, int64_t B, int64_t N, int64_t M, int64_t D,
         bool y_shared, std::uintptr_t x_len, std::uintptr_t y_len, std::uintptr_t k,
         std::uintptr_t idx, std::uintptr_t dist2, std::uintptr_t sel, bool float64,
         std::uintptr_t stream) {
        py::gil_scoped_release release;
        auto s = reinterpret_cast<cudaStream_t>(stream);
        const int64_t* kp = k ? ptr<const int64_t>(k) : nullptr;
        uint8_t* sp = sel ? ptr<uint8_t>(sel) : nullptr;
        if (float64) {
          fe_fast::knn_cuda<double>(ptr<const double>(x), ptr<const double>(y), B, N, M, D, y_shared,
                                    ptr<const int64_t>(x_len), ptr<const int64_t>(y_len), kp,
                                    ptr<int64_t>(idx), ptr<double>(dist2), sp, s);
        } else {
          fe_fast::knn_cuda<float>(ptr<const float>(x), ptr<const float>(y), B, N, M, D, y_shared,
                                   ptr<const int64_t>(x_len), ptr<const int64_t>(y_len), kp,
                                   ptr<int64_t>(idx), ptr<float>(dist2), sp, s);
        }
      },
      py::arg("x"), py::arg("y"), py::arg("B"), py::arg("N"), py::arg("M"), py::arg("D"),
      py::arg("y_shared"), py::arg("x_len"), py::arg("y_len"), py::arg("k"), py::arg("idx"),
      py::arg("dist2"), py::arg("sel"), py::arg("float64"), py::arg("stream"),
      "Nearest neighbour with optional top-k selection on the GPU (contract in csrc/knn.h).\n"
      "Raw device pointers (k = 0: no selection, sel may be 0); launched asynchronously on `stream`.");
}
