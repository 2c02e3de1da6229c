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
            outr[p] = v * (v > T(0) ? gain : neg);  // a select, not a branch: vectorises
          }
        } else {
#pragma omp simd
          for (int64_t p = 0; p < HW; ++p) {
            const T v = yr[p] * scale + shift;
            outr[p] = v * (v > T(0) ? gain : neg);  // a select, not a branch: vectorises
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

template <typename T>
void modconv_modulate_fwd_cpu(const T* x, const T* s, T* xs, int64_t rows, int64_t HW) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T sc = s[r];
    const T* xr = x + r * HW;
    T* o = xs + r * HW;
#pragma omp simd
    for (int64_t p = 0; p < HW; ++p) o[p] = xr[p] * sc;
  }
}

template <typename T>
void modconv_modulate_bwd_cpu(const T* grad_xs, const T* x, const T* s, T* grad_x, T* grad_s,
                              int64_t rows, int64_t HW) {
  // One pass over grad_xs (and x): torch's MulBackward of a broadcast product takes three.
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* g = grad_xs + r * HW;
    if (grad_x) {
      const T sc = s[r];
      T* gx = grad_x + r * HW;
#pragma omp simd
      for (int64_t p = 0; p < HW; ++p) gx[p] = g[p] * sc;
    }
    if (grad_s) {
      const T* xr = x + r * HW;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t p = 0; p < HW; ++p) acc += g[p] * xr[p];
      grad_s[r] = acc;
    }
  }
}

// Tiles of the NCHW <-> NHWC transposes: 32 channels x 64 pixels (8 KiB in float32) go through
// a buffer in L1, read and written along contiguous rows on both sides.
constexpr int64_t kTC = 32;
constexpr int64_t kTP = 64;

template <typename T>
void modconv_modulate_nhwc_cpu(const T* x, const T* s, T* xs, int64_t B, int64_t I, int64_t HW) {
  const int64_t nc = (I + kTC - 1) / kTC, np = (HW + kTP - 1) / kTP;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t pt = 0; pt < np; ++pt) {
      T buf[kTP][kTC];
      const int64_t p0 = pt * kTP, npix = std::min(kTP, HW - p0);
      for (int64_t ct = 0; ct < nc; ++ct) {
        const int64_t c0 = ct * kTC, nch = std::min(kTC, I - c0);
        for (int64_t c = 0; c < nch; ++c) {
          const T sc = s[b * I + c0 + c];
          const T* xr = x + (b * I + c0 + c) * HW + p0;
          for (int64_t p = 0; p < npix; ++p) buf[p][c] = xr[p] * sc;
        }
        for (int64_t p = 0; p < npix; ++p) {
          T* o = xs + (b * HW + p0 + p) * I + c0;
#pragma omp simd
          for (int64_t c = 0; c < nch; ++c) o[c] = buf[p][c];
        }
      }
    }
  }
}

template <typename T>
void modconv_epilogue_fwd_nhwc_cpu(const T* y, const T* d, const T* noise, int64_t noise_bstride,
                                   const T* bias, T* out, T* y_nchw, int64_t B, int64_t O,
                                   int64_t HW, bool lrelu, T slope, T gain) {
  const T neg = slope * gain;
  const int64_t nc = (O + kTC - 1) / kTC, np = (HW + kTP - 1) / kTP;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t pt = 0; pt < np; ++pt) {
      T buf[kTC][kTP];
      const int64_t p0 = pt * kTP, npix = std::min(kTP, HW - p0);
      const T* nz = noise ? noise + b * noise_bstride + p0 : nullptr;
      for (int64_t ct = 0; ct < nc; ++ct) {
        const int64_t c0 = ct * kTC, nch = std::min(kTC, O - c0);
        for (int64_t p = 0; p < npix; ++p) {
          const T* yr = y + (b * HW + p0 + p) * O + c0;
          for (int64_t c = 0; c < nch; ++c) buf[c][p] = yr[c];
        }
        for (int64_t c = 0; c < nch; ++c) {
          const int64_t o = c0 + c;
          const T scale = d ? d[b * O + o] : T(1);
          const T shift = bias ? bias[o] : T(0);
          const T* br = buf[c];
          T* outr = out + (b * O + o) * HW + p0;
          if (y_nchw) std::copy(br, br + npix, y_nchw + (b * O + o) * HW + p0);
          if (nz) {
#pragma omp simd
            for (int64_t p = 0; p < npix; ++p) {
              const T v = br[p] * scale + nz[p] + shift;
              outr[p] = lrelu ? v * (v > T(0) ? gain : neg) : v;
            }
          } else {
#pragma omp simd
            for (int64_t p = 0; p < npix; ++p) {
              const T v = br[p] * scale + shift;
              outr[p] = lrelu ? v * (v > T(0) ? gain : neg) : v;
            }
          }
        }
      }
    }
  }
}

#define FE_FAST_INSTANTIATE(T)                                                                    \
  template void modconv_epilogue_fwd_cpu<T>(const T*, const T*, const T*, int64_t, const T*, T*,  \
                                            int64_t, int64_t, int64_t, bool, T, T);               \
  template void modconv_epilogue_bwd_cpu<T>(const T*, const T*, const T*, const T*, T*, T*, T*, T*, \
                                            int64_t, int64_t, int64_t, bool, T, T);               \
  template void modconv_demod_cpu<T>(const T*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, T); \
  template void modconv_modulate_fwd_cpu<T>(const T*, const T*, T*, int64_t, int64_t);            \
  template void modconv_modulate_bwd_cpu<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t); \
  template void modconv_modulate_nhwc_cpu<T>(const T*, const T*, T*, int64_t, int64_t, int64_t); \
  template void modconv_epilogue_fwd_nhwc_cpu<T>(const T*, const T*, const T*, int64_t, const T*, \
                                                 T*, T*, int64_t, int64_t, int64_t, bool, T, T);
FE_FAST_INSTANTIATE(float)
FE_FAST_INSTANTIATE(double)
#undef FE_FAST_INSTANTIATE

}  // namespace fe_fast
