// Helpers shared by the nearest-neighbour backends (knn.h contract): plain C++ for the CPU code,
// __host__ __device__ when compiled by nvcc. Header only, no CUDA runtime dependency.
//
// - sq_dist<T, D>: |a - b|^2 accumulated coordinate by coordinate, the order every backend uses.
// - order_key: a float's bits mapped to an unsigned integer with the same order (all non-NaN
//   values, -0 just below +0), so a k-th smallest distance can be found by radix selection.
// - clamp_k: the number of queries to select, min(max(k, 0), n).
// - nn_better / nn_merge_better: the update rules that make every backend return the smallest
//   index among equal distances (a scan in increasing index order with strict '<', and the merge of
//   partial results from disjoint index ranges).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define FE_HD __host__ __device__ __forceinline__
#else
#define FE_HD inline
#endif

namespace fe_fast {
namespace knn_detail {

template <typename T, int D>
FE_HD T sq_dist(const T* a, const T* b) {
  T d = T(0);
#pragma unroll
  for (int c = 0; c < D; ++c) {
    const T diff = a[c] - b[c];
    d += diff * diff;
  }
  return d;
}

template <typename T>
struct KeyOf;
template <>
struct KeyOf<float> {
  using type = uint32_t;
};
template <>
struct KeyOf<double> {
  using type = uint64_t;
};

FE_HD uint32_t order_key(float v) {
  uint32_t u;
#if defined(__CUDA_ARCH__)
  u = __float_as_uint(v);
#else
  std::memcpy(&u, &v, sizeof(u));
#endif
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

FE_HD uint64_t order_key(double v) {
  uint64_t u;
#if defined(__CUDA_ARCH__)
  u = static_cast<uint64_t>(__double_as_longlong(v));
#else
  std::memcpy(&u, &v, sizeof(u));
#endif
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

FE_HD int64_t clamp_k(int64_t k, int64_t n) { return k < 0 ? 0 : (k > n ? n : k); }

// Running minimum over increasing indices: the first of equal distances is kept.
template <typename T>
FE_HD bool nn_better(T d, T best) {
  return d < best;
}

// Merge of two candidates from different index ranges: smaller distance, then smaller index.
template <typename T, typename I>
FE_HD bool nn_merge_better(T d, I j, T best, I arg) {
  return d < best || (d == best && j < arg);
}

}  // namespace knn_detail
}  // namespace fe_fast
