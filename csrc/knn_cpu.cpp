// CPU nearest neighbour (see knn.h). First version: exact brute force, OpenMP over queries.
#include "knn.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

namespace fe_fast {

template <typename T>
void knn_cpu(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
             const int64_t* x_len, const int64_t* y_len, const int64_t* k, int64_t* idx, T* dist2,
             uint8_t* sel) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < N; ++i) {
      const int64_t o = b * N + i;
      if (i >= x_len[b]) {
        idx[o] = -1;
        dist2[o] = T(0);
        continue;
      }
      const T* q = x + o * D;
      const T* yb = y + (y_shared ? 0 : b * M * D);
      T best = std::numeric_limits<T>::infinity();
      int64_t arg = -1;
      for (int64_t j = 0; j < y_len[b]; ++j) {
        T d = 0;
        for (int64_t c = 0; c < D; ++c) {
          const T diff = q[c] - yb[j * D + c];
          d += diff * diff;
        }
        if (d < best) {
          best = d;
          arg = j;
        }
      }
      idx[o] = arg;
      dist2[o] = best;
    }
  }
  if (k == nullptr) return;
  // Top-alpha selection by nth_element (selection, not a sort) per batch element.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = x_len[b];
    const int64_t kb = std::min<int64_t>(std::max<int64_t>(k[b], 0), n);
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    const T* db = dist2 + b * N;
    auto less = [db](int64_t a, int64_t c) { return db[a] < db[c] || (db[a] == db[c] && a < c); };
    if (kb > 0 && kb < n) std::nth_element(order.begin(), order.begin() + kb, order.end(), less);
    uint8_t* sb = sel + b * N;
    std::fill(sb, sb + N, uint8_t(0));
    for (int64_t r = 0; r < kb; ++r) sb[order[r]] = 1;
  }
}

template void knn_cpu<float>(const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool,
                             const int64_t*, const int64_t*, const int64_t*, int64_t*, float*, uint8_t*);
template void knn_cpu<double>(const double*, const double*, int64_t, int64_t, int64_t, int64_t, bool,
                              const int64_t*, const int64_t*, const int64_t*, int64_t*, double*,
                              uint8_t*);

}  // namespace fe_fast
