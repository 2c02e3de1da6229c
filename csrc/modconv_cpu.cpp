// CPU epilogue of the StyleGAN2 modulated convolution (contract in modconv.h): demodulation
// scale, noise, bias, leaky ReLU and gain in one pass over the convolution output, and the
// matching backward in one pass (grad_y, grad_d, grad_noise, grad_bias together).
#include "modconv.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fe_fast {

template <typename T>
void modconv_epilogue_fwd_cpu(const T* y, const T* d, const T* noise, int64_t noise_bstride,
                              const T* bias, T* out, int64_t B, int64_t O, int64_t HW, bool lrelu,
                              T slope, T gain) {
  const T neg = slope * gain;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t o = 0; o < O; ++o) {
      const int64_t row = (b * O + o) * HW;
      const T* yr = y + row;
      T* outr = out + row;
      const T scale = d ? d[b * O + o] : T(1);
      const T shift = bias ? bias[o] : T(0);
      const T* nz = noise ? noise + b * noise_bstride : nullptr;
      if (lrelu) {
        if (nz) {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) {
            const T v = yr[p] * scale + nz[p] + shift;
            outr[p] = v > T(0) ? v * gain : v * neg;
          }
        } else {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) {
            const T v = yr[p] * scale + shift;
            outr[p] = v > T(0) ? v * gain : v * neg;
          }
        }
      } else {
        if (nz) {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) outr[p] = yr[p] * scale + nz[p] + shift;
        } else {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) outr[p] = yr[p] * scale + shift;
        }
      }
    }
  }
}

template <typename T>
void modconv_epilogue_bwd_cpu(const T* grad_out, const T* y, const T* out, const T* d, T* grad_y,
                              T* grad_d, T* grad_noise, T* grad_bias, int64_t B, int64_t O,
                              int64_t HW, bool lrelu, T slope, T gain) {
  // Tasks are (b, pixel tile); each walks all o so that grad_noise needs no atomics. Per-task
  // partial sums of grad_d / grad_bias are reduced afterwards (deterministic order).
  const int64_t TP = 1024;
  const int64_t ntiles = (HW + TP - 1) / TP;
  const bool need_rows = grad_d != nullptr || grad_bias != nullptr;
  std::vector<T> part_d(need_rows && grad_d ? B * ntiles * O : 0);
  std::vector<T> part_b(need_rows && grad_bias ? B * ntiles * O : 0);
  const T neg = slope * gain;
#pragma omp parallel
  {
    std::vector<T> gp(TP), acc(TP);
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < ntiles; ++t) {
        const int64_t p0 = t * TP;
        const int64_t n = std::min(TP, HW - p0);
        if (grad_noise) std::fill(acc.begin(), acc.begin() + n, T(0));
        for (int64_t o = 0; o < O; ++o) {
          const int64_t off = (b * O + o) * HW + p0;
          const T* go = grad_out + off;
          T* g = gp.data();
          if (lrelu) {
            const T* ou = out + off;
#pragma omp simd
            for (int64_t p = 0; p < n; ++p) g[p] = go[p] * (ou[p] > T(0) ? gain : neg);
          } else {
#pragma omp simd
            for (int64_t p = 0; p < n; ++p) g[p] = go[p];
          }
          if (grad_y) {
            const T scale = d ? d[b * O + o] : T(1);
            T* gy = grad_y + off;
#pragma omp simd
            for (int64_t p = 0; p < n; ++p) gy[p] = g[p] * scale;
          }
          if (grad_d) {
            const T* yr = y + off;
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t p = 0; p < n; ++p) s += g[p] * yr[p];
            part_d[(b * ntiles + t) * O + o] = s;
          }
          if (grad_bias) {
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t p = 0; p < n; ++p) s += g[p];
            part_b[(b * ntiles + t) * O + o] = s;
          }
          if (grad_noise) {
            T* a = acc.data();
#pragma omp simd
            for (int64_t p = 0; p < n; ++p) a[p] += g[p];
          }
        }
        if (grad_noise) std::copy(acc.begin(), acc.begin() + n, grad_noise + b * HW + p0);
      }
    }
  }
  if (grad_d) {
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t o = 0; o < O; ++o) {
        T s = 0;
        for (int64_t t = 0; t < ntiles; ++t) s += part_d[(b * ntiles + t) * O + o];
        grad_d[b * O + o] = s;
      }
    }
  }
  if (grad_bias) {
    for (int64_t o = 0; o < O; ++o) {
      T s = 0;
      for (int64_t bt = 0; bt < B * ntiles; ++bt) s += part_b[bt * O + o];
      grad_bias[o] = s;
    }
  }
}

template <typename T>
void modconv_demod_cpu(const T* weight, const T* s, T* wsq, T* d, int64_t B, int64_t O, int64_t I,
                       int64_t KK, T eps) {
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t o = 0; o < O; ++o) {
      for (int64_t i = 0; i < I; ++i) {
        const T* w = weight + (o * I + i) * KK;
        T acc = 0;
        for (int64_t k = 0; k < KK; ++k) acc += w[k] * w[k];
        wsq[o * I + i] = acc;
      }
    }
    // implicit barrier: wsq complete
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t o = 0; o < O; ++o) {
        const T* sb = s + b * I;
        const T* q = wsq + o * I;
        T acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < I; ++i) acc += sb[i] * sb[i] * q[i];
        d[b * O + o] = T(1) / std::sqrt(acc + eps);
      }
    }
  }
}

#define FE_FAST_INSTANTIATE(T)                                                                    \
  template void modconv_epilogue_fwd_cpu<T>(const T*, const T*, const T*, int64_t, const T*, T*,  \
                                            int64_t, int64_t, int64_t, bool, T, T);               \
  template void modconv_epilogue_bwd_cpu<T>(const T*, const T*, const T*, const T*, T*, T*, T*, T*, \
                                            int64_t, int64_t, int64_t, bool, T, T);               \
  template void modconv_demod_cpu<T>(const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, T);
FE_FAST_INSTANTIATE(float)
FE_FAST_INSTANTIATE(double)
#undef FE_FAST_INSTANTIATE

}  // namespace fe_fast
