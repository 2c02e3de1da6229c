// Binding of the CPU modulated-convolution epilogue (contract in csrc/modconv.h). Pointers come
// from torch tensors' data_ptr(); fe_fast.ops.modulated_conv validates shapes, dtypes and
// contiguity before calling. A null pointer (0) means "absent" / "not needed".
#include <pybind11/pybind11.h>

#include <cstdint>

#include "modconv.h"

namespace py = pybind11;

template <typename T>
static T* mptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void bind_modconv(py::module_& m) {
  m.def(
      "modconv_epilogue_fwd",
      [](std::uintptr_t y, std::uintptr_t d, std::uintptr_t noise, int64_t noise_bstride,
         std::uintptr_t bias, std::uintptr_t out, int64_t B, int64_t O, int64_t HW, bool lrelu,
         double slope, double gain, bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_epilogue_fwd_cpu<double>(mptr<const double>(y), mptr<const double>(d),
                                                    mptr<const double>(noise), noise_bstride,
                                                    mptr<const double>(bias), mptr<double>(out), B,
                                                    O, HW, lrelu, slope, gain);
        } else {
          fe_fast::modconv_epilogue_fwd_cpu<float>(
              mptr<const float>(y), mptr<const float>(d), mptr<const float>(noise), noise_bstride,
              mptr<const float>(bias), mptr<float>(out), B, O, HW, lrelu, static_cast<float>(slope),
              static_cast<float>(gain));
        }
      },
      py::arg("y"), py::arg("d"), py::arg("noise"), py::arg("noise_bstride"), py::arg("bias"),
      py::arg("out"), py::arg("B"), py::arg("O"), py::arg("HW"), py::arg("lrelu"),
      py::arg("slope"), py::arg("gain"), py::arg("float64"),
      "Modulated-conv epilogue forward: demod scale, noise, bias, leaky ReLU, gain (csrc/modconv.h).");
  m.def(
      "modconv_epilogue_bwd",
      [](std::uintptr_t grad_out, std::uintptr_t y, std::uintptr_t out, std::uintptr_t d,
         std::uintptr_t grad_y, std::uintptr_t grad_d, std::uintptr_t grad_noise,
         std::uintptr_t grad_bias, int64_t B, int64_t O, int64_t HW, bool lrelu, double slope,
         double gain, bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_epilogue_bwd_cpu<double>(
              mptr<const double>(grad_out), mptr<const double>(y), mptr<const double>(out),
              mptr<const double>(d), mptr<double>(grad_y), mptr<double>(grad_d),
              mptr<double>(grad_noise), mptr<double>(grad_bias), B, O, HW, lrelu, slope, gain);
        } else {
          fe_fast::modconv_epilogue_bwd_cpu<float>(
              mptr<const float>(grad_out), mptr<const float>(y), mptr<const float>(out),
              mptr<const float>(d), mptr<float>(grad_y), mptr<float>(grad_d),
              mptr<float>(grad_noise), mptr<float>(grad_bias), B, O, HW, lrelu,
              static_cast<float>(slope), static_cast<float>(gain));
        }
      },
      py::arg("grad_out"), py::arg("y"), py::arg("out"), py::arg("d"), py::arg("grad_y"),
      py::arg("grad_d"), py::arg("grad_noise"), py::arg("grad_bias"), py::arg("B"), py::arg("O"),
      py::arg("HW"), py::arg("lrelu"), py::arg("slope"), py::arg("gain"), py::arg("float64"),
      "Modulated-conv epilogue backward: grad_y, grad_d, grad_noise [B, HW], grad_bias in one pass.");
  m.def(
      "modconv_demod",
      [](std::uintptr_t weight, std::uintptr_t s, std::uintptr_t wsq, std::uintptr_t d, int64_t B,
         int64_t O, int64_t I, int64_t KK, double eps, bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_demod_cpu<double>(mptr<const double>(weight), mptr<const double>(s),
                                             mptr<double>(wsq), mptr<double>(d), B, O, I, KK, eps);
        } else {
          fe_fast::modconv_demod_cpu<float>(mptr<const float>(weight), mptr<const float>(s),
                                            mptr<float>(wsq), mptr<float>(d), B, O, I, KK,
                                            static_cast<float>(eps));
        }
      },
      py::arg("weight"), py::arg("s"), py::arg("wsq"), py::arg("d"), py::arg("B"), py::arg("O"),
      py::arg("I"), py::arg("KK"), py::arg("eps"), py::arg("float64"),
      "Demodulation coefficients d [B, O] and wsq = sum_k weight^2 [O, I] (csrc/modconv.h).");
  m.def(
      "modconv_modulate_fwd",
      [](std::uintptr_t x, std::uintptr_t s, std::uintptr_t xs, int64_t rows, int64_t HW,
         bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_modulate_fwd_cpu<double>(mptr<const double>(x), mptr<const double>(s),
                                                    mptr<double>(xs), rows, HW);
        } else {
          fe_fast::modconv_modulate_fwd_cpu<float>(mptr<const float>(x), mptr<const float>(s),
                                                   mptr<float>(xs), rows, HW);
        }
      },
      py::arg("x"), py::arg("s"), py::arg("xs"), py::arg("rows"), py::arg("HW"),
      py::arg("float64"), "Input modulation xs = x * s per row (csrc/modconv.h).");
  m.def(
      "modconv_modulate_bwd",
      [](std::uintptr_t grad_xs, std::uintptr_t x, std::uintptr_t s, std::uintptr_t grad_x,
         std::uintptr_t grad_s, int64_t rows, int64_t HW, bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_modulate_bwd_cpu<double>(mptr<const double>(grad_xs),
                                                    mptr<const double>(x), mptr<const double>(s),
                                                    mptr<double>(grad_x), mptr<double>(grad_s),
                                                    rows, HW);
        } else {
          fe_fast::modconv_modulate_bwd_cpu<float>(mptr<const float>(grad_xs),
                                                   mptr<const float>(x), mptr<const float>(s),
                                                   mptr<float>(grad_x), mptr<float>(grad_s), rows,
                                                   HW);
        }
      },
      py::arg("grad_xs"), py::arg("x"), py::arg("s"), py::arg("grad_x"), py::arg("grad_s"),
      py::arg("rows"), py::arg("HW"), py::arg("float64"),
      "Input modulation backward: grad_x = grad_xs * s, grad_s = sum_p grad_xs * x, one pass.");
  m.def(
      "modconv_modulate_nhwc",
      [](std::uintptr_t x, std::uintptr_t s, std::uintptr_t xs, int64_t B, int64_t I, int64_t HW,
         bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_modulate_nhwc_cpu<double>(mptr<const double>(x), mptr<const double>(s),
                                                     mptr<double>(xs), B, I, HW);
        } else {
          fe_fast::modconv_modulate_nhwc_cpu<float>(mptr<const float>(x), mptr<const float>(s),
                                                    mptr<float>(xs), B, I, HW);
        }
      },
      py::arg("x"), py::arg("s"), py::arg("xs"), py::arg("B"), py::arg("I"), py::arg("HW"),
      py::arg("float64"), "Input modulation, NCHW x -> NHWC xs (csrc/modconv.h).");
  m.def(
      "modconv_epilogue_fwd_nhwc",
      [](std::uintptr_t y, std::uintptr_t d, std::uintptr_t noise, int64_t noise_bstride,
         std::uintptr_t bias, std::uintptr_t out, std::uintptr_t y_nchw, int64_t B, int64_t O,
         int64_t HW, bool lrelu, double slope, double gain, bool float64) {
        py::gil_scoped_release release;
        if (float64) {
          fe_fast::modconv_epilogue_fwd_nhwc_cpu<double>(
              mptr<const double>(y), mptr<const double>(d), mptr<const double>(noise),
              noise_bstride, mptr<const double>(bias), mptr<double>(out), mptr<double>(y_nchw), B,
              O, HW, lrelu, slope, gain);
        } else {
          fe_fast::modconv_epilogue_fwd_nhwc_cpu<float>(
              mptr<const float>(y), mptr<const float>(d), mptr<const float>(noise), noise_bstride,
              mptr<const float>(bias), mptr<float>(out), mptr<float>(y_nchw), B, O, HW, lrelu,
              static_cast<float>(slope), static_cast<float>(gain));
        }
      },
      py::arg("y"), py::arg("d"), py::arg("noise"), py::arg("noise_bstride"), py::arg("bias"),
      py::arg("out"), py::arg("y_nchw"), py::arg("B"), py::arg("O"), py::arg("HW"), py::arg("lrelu"),
      py::arg("slope"), py::arg("gain"), py::arg("float64"),
      "Forward epilogue reading NHWC y, writing NCHW out (and y_nchw) (csrc/modconv.h).");
}
