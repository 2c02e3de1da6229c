// Nearest neighbour with top-alpha selection: the kernel contract shared by every backend.
//
// For each valid query x[b, i] (i < x_len[b]) find the nearest valid reference point
// y[b', j] (j < y_len[b]) with b' = (y_shared ? 0 : b):
//   idx[b, i]   = j  (int64; -1 for padded queries i >= x_len[b])
//   dist2[b, i] = |x[b, i] - y[b', j]|^2  (0 for padded queries)
// If k != nullptr, sel[b, i] = 1 for exactly min(k[b], x_len[b]) valid queries of batch b with the
// smallest dist2 (thesis eq. 3-9, the set P_alpha), else 0. Ties may go either way.
// x is [B, N, D], y is [B, M, D] or [M, D] when y_shared; all contiguous; D in {2, 3}.
#pragma once
#include <cstdint>

namespace fe_fast {

template <typename T>
void knn_cpu(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
             const int64_t* x_len, const int64_t* y_len, const int64_t* k, int64_t* idx, T* dist2,
             uint8_t* sel);

}  // namespace fe_fast
