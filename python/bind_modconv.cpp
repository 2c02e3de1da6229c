// Binding of the CPU modulated-convolution kernels (contract in csrc/modconv.h). Arguments are
// numpy arrays (fe_fast.ops.modulated_conv passes tensor.numpy() of contiguous CPU tensors;
// outputs allocated by the caller; None = absent / not needed), checked here before a kernel runs
// (python/array_checks.h): ranks, sizes, one float dtype throughout, C-contiguity, writable
// outputs. NHWC arrays are passed as [B, H, W, C] C-contiguous (a channels_last tensor permuted).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "array_checks.h"
#include "modconv.h"

namespace py = pybind11;
using namespace fe_fast_bind;

namespace {

// Required float input/output of kind f with the given dims.
py::array req(const char* fn, const char* name, const py::object& o, Kind f,
              std::initializer_list<int64_t> dims, bool out = false) {
  py::array a = array_arg(fn, name, o);
  check(fn, name, a, f, dims, out);
  return a;
}

// Optional (None) float input/output.
bool opt(const char* fn, const char* name, const py::object& o, Kind f,
         std::initializer_list<int64_t> dims, py::array& a, bool out = false) {
  if (!optional_arg(fn, name, o, a)) return false;
  check(fn, name, a, f, dims, out);
  return true;
}

py::array rank4(const char* fn, const char* name, const py::object& o) {
  py::array a = array_arg(fn, name, o);
  if (a.ndim() != 4) fail(fn, std::string(name) + " must be 4-D, got " + shape_str(a));
  return a;
}

// The arguments of the input modulation x [B, I, H, W] (float), s [B, I] -> xs: [B, I, H, W]
// (NCHW) or [B, H, W, I] (nhwc), all of x's dtype.
struct ModulateArgs {
  py::array x, s, xs;
  Kind f;
  int64_t B, I, H, W;
};

ModulateArgs modulate_args(const char* fn, const py::object& x_, const py::object& s_,
                           const py::object& xs_, bool nhwc) {
  ModulateArgs a;
  a.x = rank4(fn, "x", x_);
  a.f = float_kind(fn, "x", a.x);
  a.B = a.x.shape(0), a.I = a.x.shape(1), a.H = a.x.shape(2), a.W = a.x.shape(3);
  check(fn, "x", a.x, a.f, {a.B, a.I, a.H, a.W});
  a.s = req(fn, "s", s_, a.f, {a.B, a.I});
  if (nhwc)
    a.xs = req(fn, "xs", xs_, a.f, {a.B, a.H, a.W, a.I}, true);
  else
    a.xs = req(fn, "xs", xs_, a.f, {a.B, a.I, a.H, a.W}, true);
  return a;
}

// noise [1 or B, 1, H, W] -> batch stride in elements (0 when shared by the batch)
int64_t noise_stride(const char* fn, const py::object& o, Kind f, int64_t B, int64_t H, int64_t W,
                     py::array& noise, bool& has) {
  has = optional_arg(fn, "noise", o, noise);
  if (!has) return 0;
  if (noise.ndim() != 4 || (noise.shape(0) != 1 && noise.shape(0) != B)) {
    fail(fn, "noise must have shape [1 or " + std::to_string(B) + ", 1, " + std::to_string(H) +
                 ", " + std::to_string(W) + "], got " + shape_str(noise));
  }
  check(fn, "noise", noise, f, {noise.shape(0), 1, H, W});
  return noise.shape(0) == 1 ? 0 : H * W;
}

}  // namespace

void bind_modconv(py::module_& m) {
  m.def(
      "modconv_epilogue_fwd",
      [](py::object y_, py::object d_, py::object noise_, py::object bias_, py::object out_,
         bool lrelu, double slope, double gain) {
        const char* fn = "modconv_epilogue_fwd";
        py::array y = rank4(fn, "y", y_);
        const Kind f = float_kind(fn, "y", y);
        const int64_t B = y.shape(0), O = y.shape(1), H = y.shape(2), W = y.shape(3);
        check(fn, "y", y, f, {B, O, H, W});
        py::array d, noise, bias;
        bool has_n = false;
        const bool has_d = opt(fn, "d", d_, f, {B, O}, d);
        const int64_t ns = noise_stride(fn, noise_, f, B, H, W, noise, has_n);
        const bool has_b = opt(fn, "bias", bias_, f, {O}, bias);
        py::array out = req(fn, "out", out_, f, {B, O, H, W}, true);
        const int64_t HW = H * W;
        if (f == Kind::f64) {
          auto yp = cptr<double>(y); auto dp = cptr<double>(d, has_d);
          auto np_ = cptr<double>(noise, has_n); auto bp = cptr<double>(bias, has_b);
          auto op = mptr<double>(out);
          py::gil_scoped_release release;
          fe_fast::modconv_epilogue_fwd_cpu<double>(yp, dp, np_, ns, bp, op, B, O, HW, lrelu, slope, gain);
        } else {
          auto yp = cptr<float>(y); auto dp = cptr<float>(d, has_d);
          auto np_ = cptr<float>(noise, has_n); auto bp = cptr<float>(bias, has_b);
          auto op = mptr<float>(out);
          py::gil_scoped_release release;
          fe_fast::modconv_epilogue_fwd_cpu<float>(yp, dp, np_, ns, bp, op, B, O, HW, lrelu,
                                                   static_cast<float>(slope), static_cast<float>(gain));
        }
      },
      py::arg("y"), py::arg("d"), py::arg("noise"), py::arg("bias"), py::arg("out"),
      py::arg("lrelu"), py::arg("slope"), py::arg("gain"),
      "Epilogue forward: out = act(y * d + noise + bias) * gain (csrc/modconv.h). y, out\n"
      "[B, O, H, W]; d [B, O], noise [1 or B, 1, H, W], bias [O] or None. out may be y.");
  m.def(
      "modconv_epilogue_bwd",
      [](py::object grad_out_, py::object y_, py::object out_, py::object d_, py::object grad_y_,
         py::object grad_d_, py::object grad_noise_, py::object grad_bias_, bool lrelu,
         double slope, double gain) {
        const char* fn = "modconv_epilogue_bwd";
        py::array go = rank4(fn, "grad_out", grad_out_);
        const Kind f = float_kind(fn, "grad_out", go);
        const int64_t B = go.shape(0), O = go.shape(1), H = go.shape(2), W = go.shape(3);
        check(fn, "grad_out", go, f, {B, O, H, W});
        py::array y = req(fn, "y", y_, f, {B, O, H, W});
        py::array out = req(fn, "out", out_, f, {B, O, H, W});
        py::array d, gy, gd, gn, gb;
        const bool has_d = opt(fn, "d", d_, f, {B, O}, d);
        const bool has_gy = opt(fn, "grad_y", grad_y_, f, {B, O, H, W}, gy, true);
        const bool has_gd = opt(fn, "grad_d", grad_d_, f, {B, O}, gd, true);
        const bool has_gn = opt(fn, "grad_noise", grad_noise_, f, {B, 1, H, W}, gn, true);
        const bool has_gb = opt(fn, "grad_bias", grad_bias_, f, {O}, gb, true);
        const int64_t HW = H * W;
        if (f == Kind::f64) {
          auto a = cptr<double>(go); auto b = cptr<double>(y); auto c = cptr<double>(out);
          auto e = cptr<double>(d, has_d);
          auto p = mptr<double>(gy, has_gy); auto q = mptr<double>(gd, has_gd);
          auto r = mptr<double>(gn, has_gn); auto s = mptr<double>(gb, has_gb);
          py::gil_scoped_release release;
          fe_fast::modconv_epilogue_bwd_cpu<double>(a, b, c, e, p, q, r, s, B, O, HW, lrelu, slope, gain);
        } else {
          auto a = cptr<float>(go); auto b = cptr<float>(y); auto c = cptr<float>(out);
          auto e = cptr<float>(d, has_d);
          auto p = mptr<float>(gy, has_gy); auto q = mptr<float>(gd, has_gd);
          auto r = mptr<float>(gn, has_gn); auto s = mptr<float>(gb, has_gb);
          py::gil_scoped_release release;
          fe_fast::modconv_epilogue_bwd_cpu<float>(a, b, c, e, p, q, r, s, B, O, HW, lrelu,
                                                   static_cast<float>(slope), static_cast<float>(gain));
        }
      },
      py::arg("grad_out"), py::arg("y"), py::arg("out"), py::arg("d"), py::arg("grad_y"),
      py::arg("grad_d"), py::arg("grad_noise"), py::arg("grad_bias"), py::arg("lrelu"),
      py::arg("slope"), py::arg("gain"),
      "Epilogue backward in one pass: grad_y [B, O, H, W], grad_d [B, O], grad_noise\n"
      "[B, 1, H, W], grad_bias [O] (each None when not needed) (csrc/modconv.h).");
  m.def(
      "modconv_demod",
      [](py::object weight_, py::object s_, py::object wsq_, py::object d_, double eps) {
        const char* fn = "modconv_demod";
        py::array w = rank4(fn, "weight", weight_);
        const Kind f = float_kind(fn, "weight", w);
        const int64_t O = w.shape(0), I = w.shape(1), KK = w.shape(2) * w.shape(3);
        check(fn, "weight", w, f, {O, I, w.shape(2), w.shape(3)});
        py::array s = array_arg(fn, "s", s_);
        if (s.ndim() != 2) fail(fn, "s must have shape [B, " + std::to_string(I) + "], got " + shape_str(s));
        const int64_t B = s.shape(0);
        check(fn, "s", s, f, {B, I});
        py::array wsq = req(fn, "wsq", wsq_, f, {O, I}, true);
        py::array d = req(fn, "d", d_, f, {B, O}, true);
        if (f == Kind::f64) {
          auto a = cptr<double>(w); auto b = cptr<double>(s);
          auto c = mptr<double>(wsq); auto e = mptr<double>(d);
          py::gil_scoped_release release;
          fe_fast::modconv_demod_cpu<double>(a, b, c, e, B, O, I, KK, eps);
        } else {
          auto a = cptr<float>(w); auto b = cptr<float>(s);
          auto c = mptr<float>(wsq); auto e = mptr<float>(d);
          py::gil_scoped_release release;
          fe_fast::modconv_demod_cpu<float>(a, b, c, e, B, O, I, KK, static_cast<float>(eps));
        }
      },
      py::arg("weight"), py::arg("s"), py::arg("wsq"), py::arg("d"), py::arg("eps"),
      "Demodulation coefficients d [B, O] and wsq = sum_k weight^2 [O, I] for weight\n"
      "[O, I, k, k] and s [B, I] (csrc/modconv.h).");
  m.def(
      "modconv_modulate_fwd",
      [](py::object x_, py::object s_, py::object xs_) {
        ModulateArgs m = modulate_args("modconv_modulate_fwd", x_, s_, xs_, false);
        const int64_t B = m.B, I = m.I, H = m.H, W = m.W;
        if (m.f == Kind::f64) {
          auto a = cptr<double>(m.x); auto b = cptr<double>(m.s); auto c = mptr<double>(m.xs);
          py::gil_scoped_release release;
          fe_fast::modconv_modulate_fwd_cpu<double>(a, b, c, B * I, H * W);
        } else {
          auto a = cptr<float>(m.x); auto b = cptr<float>(m.s); auto c = mptr<float>(m.xs);
          py::gil_scoped_release release;
          fe_fast::modconv_modulate_fwd_cpu<float>(a, b, c, B * I, H * W);
        }
      },
      py::arg("x"), py::arg("s"), py::arg("xs"),
      "Input modulation xs = x * s[:, :, None, None]; x, xs [B, I, H, W], s [B, I] (csrc/modconv.h).");
  m.def(
      "modconv_modulate_bwd",
      [](py::object grad_xs_, py::object x_, py::object s_, py::object grad_x_, py::object grad_s_) {
        const char* fn = "modconv_modulate_bwd";
        py::array gxs = rank4(fn, "grad_xs", grad_xs_);
        const Kind f = float_kind(fn, "grad_xs", gxs);
        const int64_t B = gxs.shape(0), I = gxs.shape(1), H = gxs.shape(2), W = gxs.shape(3);
        check(fn, "grad_xs", gxs, f, {B, I, H, W});
        py::array x = req(fn, "x", x_, f, {B, I, H, W});
        py::array s = req(fn, "s", s_, f, {B, I});
        py::array gx, gs;
        const bool has_gx = opt(fn, "grad_x", grad_x_, f, {B, I, H, W}, gx, true);
        const bool has_gs = opt(fn, "grad_s", grad_s_, f, {B, I}, gs, true);
        if (f == Kind::f64) {
          auto a = cptr<double>(gxs); auto b = cptr<double>(x); auto c = cptr<double>(s);
          auto p = mptr<double>(gx, has_gx); auto q = mptr<double>(gs, has_gs);
          py::gil_scoped_release release;
          fe_fast::modconv_modulate_bwd_cpu<double>(a, b, c, p, q, B * I, H * W);
        } else {
          auto a = cptr<float>(gxs); auto b = cptr<float>(x); auto c = cptr<float>(s);
          auto p = mptr<float>(gx, has_gx); auto q = mptr<float>(gs, has_gs);
          py::gil_scoped_release release;
          fe_fast::modconv_modulate_bwd_cpu<float>(a, b, c, p, q, B * I, H * W);
        }
      },
      py::arg("grad_xs"), py::arg("x"), py::arg("s"), py::arg("grad_x"), py::arg("grad_s"),
      "Input modulation backward in one pass: grad_x = grad_xs * s [B, I, H, W], grad_s =\n"
      "sum_p grad_xs * x [B, I] (either None when not needed) (csrc/modconv.h).");
  m.def(
      "modconv_modulate_nhwc",
      [](py::object x_, py::object s_, py::object xs_) {
        ModulateArgs m = modulate_args("modconv_modulate_nhwc", x_, s_, xs_, true);
        const int64_t B = m.B, I = m.I, H = m.H, W = m.W;
        if (m.f == Kind::f64) {
          auto a = cptr<double>(m.x); auto b = cptr<double>(m.s); auto c = mptr<double>(m.xs);
          py::gil_scoped_release release;
          fe_fast::modconv_modulate_nhwc_cpu<double>(a, b, c, B, I, H * W);
        } else {
          auto a = cptr<float>(m.x); auto b = cptr<float>(m.s); auto c = mptr<float>(m.xs);
          py::gil_scoped_release release;
          fe_fast::modconv_modulate_nhwc_cpu<float>(a, b, c, B, I, H * W);
        }
      },
      py::arg("x"), py::arg("s"), py::arg("xs"),
      "Input modulation NCHW x [B, I, H, W] -> NHWC xs [B, H, W, I] (csrc/modconv.h).");
  m.def(
      "modconv_epilogue_fwd_nhwc",
      [](py::object y_, py::object d_, py::object noise_, py::object bias_, py::object out_,
         py::object y_nchw_, bool lrelu, double slope, double gain) {
        const char* fn = "modconv_epilogue_fwd_nhwc";
        py::array y = rank4(fn, "y", y_);
        const Kind f = float_kind(fn, "y", y);
        const int64_t B = y.shape(0), H = y.shape(1), W = y.shape(2), O = y.shape(3);
        check(fn, "y", y, f, {B, H, W, O});
        py::array d, noise, bias, yn;
        bool has_n = false;
        const bool has_d = opt(fn, "d", d_, f, {B, O}, d);
        const int64_t ns = noise_stride(fn, noise_, f, B, H, W, noise, has_n);
        const bool has_b = opt(fn, "bias", bias_, f, {O}, bias);
        py::array out = req(fn, "out", out_, f, {B, O, H, W}, true);
        const bool has_yn = opt(fn, "y_nchw", y_nchw_, f, {B, O, H, W}, yn, true);
        const int64_t HW = H * W;
        if (f == Kind::f64) {
          auto yp = cptr<double>(y); auto dp = cptr<double>(d, has_d);
          auto np_ = cptr<double>(noise, has_n); auto bp = cptr<double>(bias, has_b);
          auto op = mptr<double>(out); auto yo = mptr<double>(yn, has_yn);
          py::gil_scoped_release release;
          fe_fast::modconv_epilogue_fwd_nhwc_cpu<double>(yp, dp, np_, ns, bp, op, yo, B, O, HW,
                                                         lrelu, slope, gain);
        } else {
          auto yp = cptr<float>(y); auto dp = cptr<float>(d, has_d);
          auto np_ = cptr<float>(noise, has_n); auto bp = cptr<float>(bias, has_b);
          auto op = mptr<float>(out); auto yo = mptr<float>(yn, has_yn);
          py::gil_scoped_release release;
          fe_fast::modconv_epilogue_fwd_nhwc_cpu<float>(yp, dp, np_, ns, bp, op, yo, B, O, HW, lrelu,
                                                        static_cast<float>(slope),
                                                        static_cast<float>(gain));
        }
      },
      py::arg("y"), py::arg("d"), py::arg("noise"), py::arg("bias"), py::arg("out"),
      py::arg("y_nchw"), py::arg("lrelu"), py::arg("slope"), py::arg("gain"),
      "Forward epilogue reading NHWC y [B, H, W, O], writing NCHW out [B, O, H, W] (and y_nchw\n"
      "[B, O, H, W] when not None) (csrc/modconv.h).");
}
