// Binding of the CUDA nearest-neighbour kernel: raw device pointers plus the caller's stream.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "knn_cuda.h"

namespace py = pybind11;

void bind_knn_cuda(py::module_& m) {
  m.def(
      "knn",
      [](std::uintptr_t x, std::uintptr_t y, int64_t B, int64_t N, int64_t M, int64_t D,
         bool y_shared, std::uintptr_t x_len, std::uintptr_t y_len, std::uintptr_t idx,
         std::uintptr_t dist2, bool float64, std::uintptr_t stream) {
        py::gil_scoped_release release;
        auto s = reinterpret_cast<cudaStream_t>(stream);
        auto xl = reinterpret_cast<const int64_t*>(x_len);
        auto yl = reinterpret_cast<const int64_t*>(y_len);
        auto ip = reinterpret_cast<int64_t*>(idx);
        if (float64) {
          fe_fast::knn_cuda<double>(reinterpret_cast<const double*>(x), reinterpret_cast<const double*>(y),
                                    B, N, M, D, y_shared, xl, yl, ip, reinterpret_cast<double*>(dist2), s);
        } else {
          fe_fast::knn_cuda<float>(reinterpret_cast<const float*>(x), reinterpret_cast<const float*>(y),
                                   B, N, M, D, y_shared, xl, yl, ip, reinterpret_cast<float*>(dist2), s);
        }
      },
      py::arg("x"), py::arg("y"), py::arg("B"), py::arg("N"), py::arg("M"), py::arg("D"),
      py::arg("y_shared"), py::arg("x_len"), py::arg("y_len"), py::arg("idx"), py::arg("dist2"),
      py::arg("float64"), py::arg("stream"),
      "Nearest neighbour on the GPU (contract in csrc/knn.h, no selection). Raw device pointers.");
}
