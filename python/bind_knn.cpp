// Binding of the CPU nearest-neighbour kernel. Pointers come from torch tensors' data_ptr();
// fe_fast.ops.knn validates shapes, dtypes and contiguity before calling.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "knn.h"

namespace py = pybind11;

template <typename T>
static T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void bind_knn(py::module_& m) {
  m.def(
      "knn",
      [](std::uintptr_t x, std::uintptr_t y, int64_t B, int64_t N, int64_t M, int64_t D,
         bool y_shared, std::uintptr_t x_len, std::uintptr_t y_len, std::uintptr_t k,
         std::uintptr_t idx, std::uintptr_t dist2, std::uintptr_t sel, bool float64) {
        py::gil_scoped_release release;
        const int64_t* kp = k ? ptr<const int64_t>(k) : nullptr;
        if (float64) {
          fe_fast::knn_cpu<double>(ptr<const double>(x), ptr<const double>(y), B, N, M, D, y_shared,
                                   ptr<const int64_t>(x_len), ptr<const int64_t>(y_len), kp,
                                   ptr<int64_t>(idx), ptr<double>(dist2), ptr<uint8_t>(sel));
        } else {
          fe_fast::knn_cpu<float>(ptr<const float>(x), ptr<const float>(y), B, N, M, D, y_shared,
                                  ptr<const int64_t>(x_len), ptr<const int64_t>(y_len), kp,
                                  ptr<int64_t>(idx), ptr<float>(dist2), ptr<uint8_t>(sel));
        }
      },
      py::arg("x"), py::arg("y"), py::arg("B"), py::arg("N"), py::arg("M"), py::arg("D"),
      py::arg("y_shared"), py::arg("x_len"), py::arg("y_len"), py::arg("k"), py::arg("idx"),
      py::arg("dist2"), py::arg("sel"), py::arg("float64"),
      "Nearest neighbour with optional top-k selection (contract in csrc/knn.h). Raw pointers.");
}
