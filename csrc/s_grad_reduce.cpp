// CPU kernel for fe_fast.ops.s_grad_reduce (contract in s_grad_reduce.h, thesis eq. 6-5 / 6-6).
//
// One pass over the gradient buffer: the rows of the positives are split over the OpenMP threads
// (static schedule, so the result is deterministic for a given thread count); each thread streams
// its rows contiguously and accumulates signed and absolute sums into its own double [C] buffers
// (2 x 8 x 9088 bytes at 1024: stays in L2). The thread buffers are then reduced per channel,
// averaged, and each layer's response and top-k (partial sort on |mean|) are computed in parallel
// over layers.
#include "s_grad_reduce.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace fe_fast {

template <typename T>
void s_grad_reduce_cpu(const T* g, int64_t B, int64_t C, const uint8_t* mask, const int64_t* offsets,
                       int64_t L, int64_t k, T* mean, T* mean_abs, T* layer, int64_t* topk_idx,
                       T* topk_val) {
  std::vector<int64_t> rows;
  rows.reserve(B);
  for (int64_t b = 0; b < B; ++b)
    if (mask[b]) rows.push_back(b);
  const int64_t P = static_cast<int64_t>(rows.size());
  // Small inputs (e.g. 40 positives of 1000) run on one thread: a parallel region costs more than
  // the work there, and much more on an oversubscribed machine.
  const int64_t work = P * C;
  const int nt = std::max<int>(1, static_cast<int>(std::min<int64_t>({static_cast<int64_t>(omp_get_max_threads()),
                                                                     std::max<int64_t>(P, 1), work >> 20})));
  std::vector<double> acc(static_cast<size_t>(nt) * 2 * C, 0.0);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num();
    double* s = acc.data() + static_cast<size_t>(t) * 2 * C;
    double* a = s + C;
    const int64_t lo = P * t / nt, hi = P * (t + 1) / nt;
    for (int64_t r = lo; r < hi; ++r) {
      const T* row = g + rows[r] * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const double v = static_cast<double>(row[c]);
        s[c] += v;
        a[c] += std::fabs(v);
      }
    }
  }

  const double inv = P > 0 ? 1.0 / static_cast<double>(P) : std::nan("");
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (int64_t c = 0; c < C; ++c) {
    double s = 0.0, a = 0.0;
    for (int t = 0; t < nt; ++t) {
      s += acc[static_cast<size_t>(t) * 2 * C + c];
      a += acc[static_cast<size_t>(t) * 2 * C + C + c];
    }
    mean[c] = static_cast<T>(s * inv);
    mean_abs[c] = static_cast<T>(a * inv);
  }

#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t l = 0; l < L; ++l) {
    const int64_t o = offsets[l], n = offsets[l + 1] - offsets[l];
    double r = 0.0;
    for (int64_t c = 0; c < n; ++c) r += static_cast<double>(mean_abs[o + c]);
    layer[l] = static_cast<T>(n > 0 ? r / static_cast<double>(n) : 0.0);
    std::vector<int64_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0);
    const T* m = mean + o;
    const int64_t kk = std::min(k, n);
    std::partial_sort(idx.begin(), idx.begin() + kk, idx.end(), [m](int64_t i, int64_t j) {
      const T ai = std::abs(m[i]), aj = std::abs(m[j]);
      return ai > aj || (ai == aj && i < j);
    });
    for (int64_t j = 0; j < k; ++j) {
      topk_idx[l * k + j] = j < kk ? idx[j] : -1;
      topk_val[l * k + j] = j < kk ? m[idx[j]] : T(0);
    }
  }
}

template void s_grad_reduce_cpu<float>(const float*, int64_t, int64_t, const uint8_t*, const int64_t*, int64_t,
                                       int64_t, float*, float*, float*, int64_t*, float*);
template void s_grad_reduce_cpu<double>(const double*, int64_t, int64_t, const uint8_t*, const int64_t*, int64_t,
                                        int64_t, double*, double*, double*, int64_t*, double*);

}  // namespace fe_fast
