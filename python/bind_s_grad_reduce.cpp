// Binding of the CPU S-gradient reduction (contract in csrc/s_grad_reduce.h). Arguments are numpy
// arrays (fe_fast.ops.s_grad_reduce passes tensor.numpy() of contiguous CPU tensors, outputs
// allocated by the caller), checked here before the kernel runs (python/array_checks.h): ranks,
// sizes, dtypes, C-contiguity, writable outputs, and the layer offsets the kernel indexes with.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "array_checks.h"
#include "s_grad_reduce.h"

namespace py = pybind11;
using namespace fe_fast_bind;

namespace {

constexpr const char* kFn = "s_grad_reduce";

template <typename T>
void run(const py::array& g, int64_t B, int64_t C, const py::array& mask, const py::array& off,
         int64_t L, int64_t k, py::array& mean, py::array& mean_abs, py::array& layer,
         py::array& idx, py::array& val) {
  const T* gp = cptr<T>(g);
  const uint8_t* mp = cptr<uint8_t>(mask);
  const int64_t* op = cptr<int64_t>(off);
  T* a = mptr<T>(mean);
  T* b = mptr<T>(mean_abs);
  T* c = mptr<T>(layer);
  int64_t* ip = mptr<int64_t>(idx);
  T* vp = mptr<T>(val);
  py::gil_scoped_release release;
  fe_fast::s_grad_reduce_cpu<T>(gp, B, C, mp, op, L, k, a, b, c, ip, vp);
}

}  // namespace

void bind_s_grad_reduce(py::module_& m) {
  m.def(
      "s_grad_reduce",
      [](py::object g_, py::object mask_, py::object offsets_, int64_t k, py::object mean_,
         py::object mean_abs_, py::object layer_, py::object topk_idx_, py::object topk_val_) {
        py::array g = array_arg(kFn, "g", g_), mask = array_arg(kFn, "mask", mask_);
        py::array off = array_arg(kFn, "offsets", offsets_);
        py::array mean = array_arg(kFn, "mean", mean_), mean_abs = array_arg(kFn, "mean_abs", mean_abs_);
        py::array layer = array_arg(kFn, "layer", layer_);
        py::array idx = array_arg(kFn, "topk_idx", topk_idx_), val = array_arg(kFn, "topk_val", topk_val_);
        if (g.ndim() != 2) fail(kFn, "g must have shape [B, C], got " + shape_str(g));
        const Kind f = float_kind(kFn, "g", g);
        const int64_t B = g.shape(0), C = g.shape(1);
        if (off.ndim() != 1 || off.shape(0) < 2) {
          fail(kFn, "offsets must have shape [L + 1] with L >= 1, got " + shape_str(off));
        }
        const int64_t L = off.shape(0) - 1;
        if (k < 1) fail(kFn, "k must be >= 1, got " + std::to_string(k));
        check(kFn, "g", g, f, {B, C});
        check(kFn, "mask", mask, Kind::u8, {B});
        check(kFn, "offsets", off, Kind::i64, {L + 1});
        check_out(kFn, "mean", mean, f, {C});
        check_out(kFn, "mean_abs", mean_abs, f, {C});
        check_out(kFn, "layer", layer, f, {L});
        check_out(kFn, "topk_idx", idx, Kind::i64, {L, k});
        check_out(kFn, "topk_val", val, f, {L, k});
        check_disjoint(kFn, {{"mean", mean}, {"mean_abs", mean_abs}, {"layer", layer}, {"topk_idx", idx},
                             {"topk_val", val}},
                       {{"g", g}, {"mask", mask}, {"offsets", off}});
        // The kernel indexes channels with the offsets: 0 = o_0 < ... < o_L = C, layers >= k wide.
        const int64_t* o = cptr<int64_t>(off);
        if (o[0] != 0 || o[L] != C) {
          fail(kFn, "offsets must start at 0 and end at C=" + std::to_string(C) + ", got " +
                        std::to_string(o[0]) + ".." + std::to_string(o[L]));
        }
        for (int64_t l = 0; l < L; ++l) {
          if (o[l + 1] - o[l] < k) {
            fail(kFn, "layer " + std::to_string(l) + " has " + std::to_string(o[l + 1] - o[l]) +
                          " channels, fewer than k=" + std::to_string(k));
          }
        }
        const uint8_t* mp = cptr<uint8_t>(mask);
        bool any = false;
        for (int64_t b = 0; b < B && !any; ++b) any = mp[b] != 0;
        if (!any) fail(kFn, "mask selects no sample");
        if (f == Kind::f64) {
          run<double>(g, B, C, mask, off, L, k, mean, mean_abs, layer, idx, val);
        } else {
          run<float>(g, B, C, mask, off, L, k, mean, mean_abs, layer, idx, val);
        }
      },
      py::arg("g"), py::arg("mask"), py::arg("offsets"), py::arg("k"), py::arg("mean"),
      py::arg("mean_abs"), py::arg("layer"), py::arg("topk_idx"), py::arg("topk_val"),
      "Masked per-channel mean / mean |.|, per-layer response and per-layer top-k of S-space\n"
      "gradients (contract in csrc/s_grad_reduce.h). g [B, C] float32/float64, mask bool/uint8 [B]\n"
      "(at least one set), offsets int64 [L+1] (0 ... C, layers >= k channels); outputs mean,\n"
      "mean_abs [C], layer [L], topk_idx int64 [L, k], topk_val [L, k]. Numpy arrays, C-contiguous;\n"
      "outputs writable. Raises ValueError on any mismatch.");
}
