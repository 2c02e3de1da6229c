// StyleGAN2 modulated convolution epilogue (thesis eq. 5-2 plus rosinality's NoiseInjection and
// FusedLeakyReLU): the kernel contract shared by the CPU backend and fe_fast.ops.modulated_conv.
//
// Forward, for every b < B, o < O, p < HW (all tensors contiguous):
//   v            = y[b, o, p] * (d ? d[b, o] : 1) + (noise ? noise[b * noise_bstride + p] : 0)
//                  + (bias ? bias[o] : 0)
//   out[b, o, p] = lrelu ? (v > 0 ? v : slope * v) * gain : v
// y is the output of the shared-weight convolution, d the demodulation coefficients [B, O],
// noise [B or 1, HW] (noise_bstride = HW or 0), bias [O]. out may alias y (in-place).
//
// Backward, with gp = lrelu ? grad_out * gain * (out > 0 ? 1 : slope) : grad_out:
//   grad_y[b, o, p] = gp * (d ? d[b, o] : 1)
//   grad_d[b, o]    = sum_p gp * y[b, o, p]
//   grad_noise[b, p] = sum_o gp                 ([B, HW]; the caller sums over b for a shared noise)
//   grad_bias[o]    = sum_{b, p} gp
// Every output pointer may be null (not needed). out > 0 <=> v > 0 because gain, slope > 0.
//
// Demodulation (thesis eq. 5-2) without per-sample weights, for weight [O, I, KK] and s [B, I]:
//   wsq[o, i] = sum_k weight[o, i, k]^2
//   d[b, o]   = 1 / sqrt(sum_i s[b, i]^2 * wsq[o, i] + eps)
// Input modulation (thesis eq. 5-1 with the style moved onto the input), rows r = b * I + i of
// x [B * I, HW] and s [B * I]:
//   forward:  xs[r, p] = x[r, p] * s[r]
//   backward: grad_x[r, p] = grad_xs[r, p] * s[r],  grad_s[r] = sum_p grad_xs[r, p] * x[r, p]
//             (one pass; either output pointer may be null)
//
// channels_last variants (the inference path of the CPU backend, whose oneDNN convolution is
// faster on NHWC): modulate_nhwc writes xs[b, p, i] = x[b, i, p] * s[b, i] (x NCHW, xs NHWC);
// epilogue_fwd_nhwc reads y[b, p, o] (NHWC) and writes out[b, o, p] (NCHW), otherwise exactly
// the forward epilogue above; y_nchw, when not null, receives y in NCHW (for the backward).
#pragma once
#include <cstdint>

namespace fe_fast {

template <typename T>
void modconv_epilogue_fwd_cpu(const T* y, const T* d, const T* noise, int64_t noise_bstride,
                              const T* bias, T* out, int64_t B, int64_t O, int64_t HW, bool lrelu,
                              T slope, T gain);

template <typename T>
void modconv_epilogue_bwd_cpu(const T* grad_out, const T* y, const T* out, const T* d, T* grad_y,
                              T* grad_d, T* grad_noise, T* grad_bias, int64_t B, int64_t O,
                              int64_t HW, bool lrelu, T slope, T gain);

template <typename T>
void modconv_demod_cpu(const T* weight, const T* s, T* wsq, T* d, int64_t B, int64_t O, int64_t I,
                       int64_t KK, T eps);

template <typename T>
void modconv_modulate_fwd_cpu(const T* x, const T* s, T* xs, int64_t rows, int64_t HW);

template <typename T>
void modconv_modulate_bwd_cpu(const T* grad_xs, const T* x, const T* s, T* grad_x, T* grad_s,
                              int64_t rows, int64_t HW);

template <typename T>
void modconv_modulate_nhwc_cpu(const T* x, const T* s, T* xs, int64_t B, int64_t I, int64_t HW);

template <typename T>
void modconv_epilogue_fwd_nhwc_cpu(const T* y, const T* d, const T* noise, int64_t noise_bstride,
                                   const T* bias, T* out, T* y_nchw, int64_t B, int64_t O,
                                   int64_t HW, bool lrelu, T slope, T gain);

}  // namespace fe_fast
