// Binding of the CPU S-gradient reduction (contract in csrc/s_grad_reduce.h). Pointers come from
// torch tensors' data_ptr(); fe_fast.ops.s_grad_reduce validates shapes, dtypes and contiguity.
#include <pybind11/pybind11.h>

#include <cstdint>

#include "s_grad_reduce.h"

namespace py = pybind11;

template <typename T>
static T* sgr_ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void bind_s_grad_reduce(py::module_& m) {
  m.def(
      "s_grad_reduce",
      [](std::uintptr_t g, int64_t B, int64_t C, std::uintptr_t mask, std::uintptr_t offsets, int64_t L,
         int64_t k, std::uintptr_t mean, std::uintptr_t mean_abs, std::uintptr_t layer, std::uintptr_t topk_idx,
         std::uintptr_t topk_val, bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::s_grad_reduce_cpu<double>(sgr_ptr<const double>(g), B, C, sgr_ptr<const uint8_t>(mask),
                                             sgr_ptr<const int64_t>(offsets), L, k, sgr_ptr<double>(mean),
                                             sgr_ptr<double>(mean_abs), sgr_ptr<double>(layer),
                                             sgr_ptr<int64_t>(topk_idx), sgr_ptr<double>(topk_val));
        } else {
          fe_fast::s_grad_reduce_cpu<float>(sgr_ptr<const float>(g), B, C, sgr_ptr<const uint8_t>(mask),
                                            sgr_ptr<const int64_t>(offsets), L, k, sgr_ptr<float>(mean),
                                            sgr_ptr<float>(mean_abs), sgr_ptr<float>(layer),
                                            sgr_ptr<int64_t>(topk_idx), sgr_ptr<float>(topk_val));
        }
      },
      py::arg("g"), py::arg("B"), py::arg("C"), py::arg("mask"), py::arg("offsets"), py::arg("L"), py::arg("k"),
      py::arg("mean"), py::arg("mean_abs"), py::arg("layer"), py::arg("topk_idx"), py::arg("topk_val"),
      py::arg("float64"),
      "Masked per-channel mean / mean |.|, per-layer response and per-layer top-k of S-space gradients "
      "(contract in csrc/s_grad_reduce.h). Raw pointers.");
}
