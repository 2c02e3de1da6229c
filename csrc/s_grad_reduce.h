// Per-layer reduction of per-sample S-space gradients (thesis eq. 6-5 / 6-6): the kernel contract
// shared by every backend (C++ here, Triton in kernels/s_grad_reduce.py).
//
// g is [B, C] row-major (C = total channels of all style layers, packed layer after layer),
// mask[b] != 0 marks the samples that count (the positives P of eq. 6-5), P = sum(mask) > 0.
// Layer l owns channels [offsets[l], offsets[l+1]); offsets has L+1 entries, offsets[0] = 0,
// offsets[L] = C, every layer holds >= k channels.
//   mean[c]      = (1/P) sum_{b in P} g[b, c]              (eq. 6-5, signed)
//   mean_abs[c]  = (1/P) sum_{b in P} |g[b, c]|
//   layer[l]     = mean over c in layer l of mean_abs[c]   (the layer's response)
//   topk_idx[l, j], topk_val[l, j]: the k channels of layer l with the largest |mean[c]| in
//   decreasing order (channel index inside the layer; ties -> smaller index), topk_val = mean[c]
//   (signed)                                               (eq. 6-6, C_l^k)
// Sums are accumulated in double.
#pragma once
#include <cstdint>

namespace fe_fast {

template <typename T>
void s_grad_reduce_cpu(const T* g, int64_t B, int64_t C, const uint8_t* mask, const int64_t* offsets,
                       int64_t L, int64_t k, T* mean, T* mean_abs, T* layer, int64_t* topk_idx,
                       T* topk_val);

}  // namespace fe_fast
