// CUDA nearest neighbour with top-k selection (contract in knn.h; thesis eq. 3-9 / 3-10).
//
// Three kernels on the caller's stream:
// 1. knn_nn_kernel<T, D>: grid (query blocks, batch, M splits). A block of NN_THREADS threads owns
//    NN_THREADS * NN_QPT queries (NN_QPT per thread, strided by NN_THREADS so loads coalesce) and a
//    contiguous chunk of reference indices. Reference points stream through shared memory in tiles
//    of NN_TILE points stored coordinate-major (every thread reads the same address: a broadcast, no
//    bank conflicts); each point read from shared memory serves NN_QPT queries (independent
//    dependency chains for ILP). D = 2 / 3 are template parameters so the loops fully unroll.
//    Running minimum with strict '<' over increasing indices: the first of equal distances wins.
// 2. knn_merge_kernel<T>: when the reference range is split over several blocks (to fill the GPU
//    when B * N is small, e.g. B = 1), merges the per-chunk partial results in chunk order (smaller
//    distance, then smaller index), so the answer equals a serial scan. The partials live in a
//    stream-ordered scratch buffer (cudaMallocAsync / cudaFreeAsync); if that allocation fails the
//    launch falls back to no split.
// 3. knn_select_kernel<T>: one block per batch element. Radix selection of the k-th smallest
//    distance on order-preserving integer keys (8 bits per pass, shared-memory histogram, the
//    digit found by one warp's scan), then one ordered pass that selects every key below the
//    threshold and the first (k - below) keys equal to it by query index (warp ballots + block
//    prefix of warp counts): exactly min(k, x_len) queries, no sort.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "knn_common.h"
#include "knn_cuda.h"

namespace fe_fast {
namespace {

using knn_detail::clamp_k;
using knn_detail::KeyOf;
using knn_detail::nn_better;
using knn_detail::nn_merge_better;
using knn_detail::order_key;
using knn_detail::sq_dist;

constexpr int NN_THREADS = 128;  // threads per block
constexpr int NN_QPT = 4;        // queries per thread
constexpr int NN_TILE = 512;     // reference points per shared-memory tile
constexpr int SEL_THREADS = 512;
constexpr int SEL_WARPS = SEL_THREADS / 32;
constexpr int64_t MAX_GRID_YZ = 65535;

template <typename T>
__device__ __forceinline__ T inf_of();
template <>
__device__ __forceinline__ float inf_of<float>() {
  return __int_as_float(0x7f800000);
}
template <>
__device__ __forceinline__ double inf_of<double>() {
  return __longlong_as_double(0x7ff0000000000000ll);
}

template <typename T, int D>
__global__ void __launch_bounds__(NN_THREADS)
    knn_nn_kernel(const T* __restrict__ x, const T* __restrict__ y, int64_t N, int64_t M,
                  bool y_shared, const int64_t* __restrict__ x_len,
                  const int64_t* __restrict__ y_len, int64_t m_chunk, int64_t* __restrict__ idx,
                  T* __restrict__ dist2, T* __restrict__ part_d, int32_t* __restrict__ part_i) {
  __shared__ T sy[D][NN_TILE];
  const int64_t b = blockIdx.y;
  const int64_t B = gridDim.y;
  const int64_t s = blockIdx.z;
  const bool split = gridDim.z > 1;
  const int64_t xl = x_len[b];
  const int64_t yl = y_len[b];
  const int64_t q0 = int64_t(blockIdx.x) * (NN_THREADS * NN_QPT) + threadIdx.x;
  const int64_t m0 = s * m_chunk;
  const int64_t m1 = (m0 + m_chunk < yl) ? (m0 + m_chunk) : yl;
  // Block-uniform: some query of the block is valid and the chunk holds valid references.
  const bool work = int64_t(blockIdx.x) * (NN_THREADS * NN_QPT) < xl && m0 < m1;

  T q[NN_QPT][D];
  T best[NN_QPT];
  int32_t arg[NN_QPT];
#pragma unroll
  for (int u = 0; u < NN_QPT; ++u) {
    const int64_t i = q0 + int64_t(u) * NN_THREADS;
    const bool valid = i < xl;
#pragma unroll
    for (int c = 0; c < D; ++c) q[u][c] = valid ? x[(b * N + i) * D + c] : T(0);
    best[u] = inf_of<T>();
    arg[u] = int32_t(m0);  // a valid index even if every distance overflows to inf
  }

  if (work) {
    const T* yb = y + (y_shared ? int64_t(0) : b * M * D);
    for (int64_t t0 = m0; t0 < m1; t0 += NN_TILE) {
      const int count = int((m1 - t0 < NN_TILE) ? (m1 - t0) : NN_TILE);
      __syncthreads();  // the previous tile is consumed
      for (int p = threadIdx.x; p < count; p += NN_THREADS) {
        const T* src = yb + (t0 + p) * D;
#pragma unroll
        for (int c = 0; c < D; ++c) sy[c][p] = src[c];
      }
      __syncthreads();
      const int32_t base = int32_t(t0);
#pragma unroll 4
      for (int j = 0; j < count; ++j) {
        T r[D];
#pragma unroll
        for (int c = 0; c < D; ++c) r[c] = sy[c][j];
#pragma unroll
        for (int u = 0; u < NN_QPT; ++u) {
          const T d = sq_dist<T, D>(q[u], r);
          if (nn_better(d, best[u])) {
            best[u] = d;
            arg[u] = base + j;
          }
        }
      }
    }
  }

#pragma unroll
  for (int u = 0; u < NN_QPT; ++u) {
    const int64_t i = q0 + int64_t(u) * NN_THREADS;
    if (i >= N) continue;
    const bool valid = i < xl;
    if (!split) {
      const int64_t o = b * N + i;
      idx[o] = valid ? int64_t(arg[u]) : int64_t(-1);
      dist2[o] = valid ? best[u] : T(0);
    } else if (valid) {
      const int64_t o = (s * B + b) * N + i;
      part_d[o] = best[u];
      part_i[o] = work ? arg[u] : int32_t(-1);
    }
  }
}

template <typename T>
__global__ void knn_merge_kernel(int64_t B, int64_t N, int64_t S, const int64_t* __restrict__ x_len,
                                 const T* __restrict__ part_d, const int32_t* __restrict__ part_i,
                                 int64_t* __restrict__ idx, T* __restrict__ dist2) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= B * N) return;
  const int64_t b = t / N, i = t - b * N;
  if (i >= x_len[b]) {
    idx[t] = -1;
    dist2[t] = T(0);
    return;
  }
  T best = part_d[t];  // chunk 0 always holds valid references (y_len >= 1)
  int32_t arg = part_i[t];
  for (int64_t s = 1; s < S; ++s) {
    const int64_t o = s * B * N + t;
    const int32_t j = part_i[o];
    const T d = part_d[o];
    if (j >= 0 && nn_merge_better(d, j, best, arg)) {
      best = d;
      arg = j;
    }
  }
  idx[t] = arg;
  dist2[t] = best;
}

template <typename T>
__global__ void __launch_bounds__(SEL_THREADS)
    knn_select_kernel(const T* __restrict__ dist2, int64_t N, const int64_t* __restrict__ x_len,
                      const int64_t* __restrict__ k, uint8_t* __restrict__ sel) {
  using K = typename KeyOf<T>::type;
  constexpr int BITS = 8 * int(sizeof(K));
  __shared__ unsigned int hist[256];
  __shared__ unsigned int warp_count[SEL_WARPS];
  __shared__ K s_prefix;
  __shared__ int64_t s_need;

  const int64_t b = blockIdx.x;
  const int64_t n = x_len[b];
  const int64_t kb = clamp_k(k[b], n);
  const T* row = dist2 + b * N;
  uint8_t* out = sel + b * N;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  if (kb == 0 || kb == n) {  // nothing or every valid query: no search needed
    for (int64_t i = threadIdx.x; i < N; i += SEL_THREADS) out[i] = uint8_t(kb == n && i < n);
    return;
  }

  // Radix search: after the pass at `shift`, prefix holds the top bits of the kb-th smallest key
  // and `need` its rank (1-based) among the keys sharing those bits.
  K prefix = 0, mask = 0;
  int64_t need = kb;
  for (int shift = BITS - 8; shift >= 0; shift -= 8) {
    for (int h = threadIdx.x; h < 256; h += SEL_THREADS) hist[h] = 0u;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < n; i += SEL_THREADS) {
      const K key = order_key(row[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[unsigned((key >> shift) & K(255))], 1u);
    }
    __syncthreads();
    if (warp == 0) {
      unsigned int c[8];
      unsigned int local = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        c[e] = hist[lane * 8 + e];
        local += c[e];
      }
      unsigned int incl = local;
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
        const unsigned int v = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += v;
      }
      int64_t acc = int64_t(incl) - int64_t(local);
      if (acc < need && need <= int64_t(incl)) {  // exactly one lane
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          if (need <= acc + int64_t(c[e])) {
            s_prefix = prefix | (K(lane * 8 + e) << shift);
            s_need = need - acc;
            break;
          }
          acc += c[e];
        }
      }
    }
    __syncthreads();
    prefix = s_prefix;
    need = s_need;
    mask |= K(255) << shift;
  }
  const K thresh = prefix;

  // Ordered pass: keys below the threshold, then the first `need` keys equal to it.
  int64_t seen = 0;
  const unsigned int lt_mask = (1u << lane) - 1u;
  for (int64_t base = 0; base < N; base += SEL_THREADS) {
    const int64_t i = base + threadIdx.x;
    const bool valid = i < n;
    const K key = valid ? order_key(row[i]) : K(0);
    const bool below = valid && key < thresh;
    const bool equal = valid && key == thresh;
    const unsigned int ballot = __ballot_sync(0xffffffffu, equal);
    if (lane == 0) warp_count[warp] = __popc(ballot);
    __syncthreads();
    int64_t offset = 0, total = 0;
#pragma unroll
    for (int w = 0; w < SEL_WARPS; ++w) {
      const int64_t v = warp_count[w];
      offset += (w < warp) ? v : 0;
      total += v;
    }
    const int64_t rank = seen + offset + __popc(ballot & lt_mask);  // 0-based among equal keys
    if (i < N) out[i] = uint8_t(below || (equal && rank < need));
    seen += total;
    __syncthreads();  // warp_count is rewritten next iteration
  }
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("knn_cuda: ") + what + ": " + cudaGetErrorString(err));
  }
}

int sm_count() {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) {
    cudaGetLastError();
    return 1;
  }
  return sms;
}

template <typename T, int D>
void launch_batch(const T* x, const T* y, int64_t B, int64_t N, int64_t M, bool y_shared,
                  const int64_t* x_len, const int64_t* y_len, const int64_t* k, int64_t* idx,
                  T* dist2, uint8_t* sel, int sms, cudaStream_t stream) {
  const int64_t per_block = int64_t(NN_THREADS) * NN_QPT;
  const int64_t qblocks = (N + per_block - 1) / per_block;
  const int64_t tiles = (M + NN_TILE - 1) / NN_TILE;
  // Split the reference range when the query blocks alone cannot fill the GPU (about 8 resident
  // blocks per SM), one tile per chunk at least.
  const int64_t target = int64_t(8) * sms;
  int64_t S = (target + qblocks * B - 1) / (qblocks * B);
  S = S < 1 ? 1 : (S > tiles ? tiles : S);
  S = S > MAX_GRID_YZ ? MAX_GRID_YZ : S;
  int64_t m_chunk = ((M + S - 1) / S + NN_TILE - 1) / NN_TILE * NN_TILE;
  S = (M + m_chunk - 1) / m_chunk;

  void* scratch = nullptr;
  T* part_d = nullptr;
  int32_t* part_i = nullptr;
  if (S > 1) {
    const size_t elems = size_t(S) * size_t(B) * size_t(N);
    const size_t d_bytes = (elems * sizeof(T) + 255) / 256 * 256;
    if (cudaMallocAsync(&scratch, d_bytes + elems * sizeof(int32_t), stream) == cudaSuccess) {
      part_d = static_cast<T*>(scratch);
      part_i = reinterpret_cast<int32_t*>(static_cast<char*>(scratch) + d_bytes);
    } else {
      cudaGetLastError();  // no stream-ordered pool here: scan the whole range per block
      scratch = nullptr;
      S = 1;
      m_chunk = M;
    }
  }
  if (S == 1) m_chunk = M;

  const dim3 grid{unsigned(qblocks), unsigned(B), unsigned(S)};
  knn_nn_kernel<T, D><<<grid, NN_THREADS, 0, stream>>>(x, y, N, M, y_shared, x_len, y_len, m_chunk,
                                                       idx, dist2, part_d, part_i);
  check(cudaGetLastError(), "nearest-neighbour launch");
  if (S > 1) {
    const int threads = 256;
    const int64_t blocks = (B * N + threads - 1) / threads;
    knn_merge_kernel<T><<<unsigned(blocks), threads, 0, stream>>>(B, N, S, x_len, part_d, part_i,
                                                                   idx, dist2);
    check(cudaGetLastError(), "merge launch");
    check(cudaFreeAsync(scratch, stream), "scratch free");
  }
  if (k != nullptr) {
    knn_select_kernel<T><<<unsigned(B), SEL_THREADS, 0, stream>>>(dist2, N, x_len, k, sel);
    check(cudaGetLastError(), "selection launch");
  }
}

}  // namespace

template <typename T>
void knn_cuda(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
              const int64_t* x_len, const int64_t* y_len, const int64_t* k, int64_t* idx, T* dist2,
              uint8_t* sel, cudaStream_t stream) {
  if (D != 2 && D != 3) throw std::invalid_argument("knn_cuda: D must be 2 or 3, got " + std::to_string(D));
  if (M > int64_t(INT32_MAX) - NN_TILE) throw std::invalid_argument("knn_cuda: M must be below 2^31");
  if (k != nullptr && sel == nullptr) throw std::invalid_argument("knn_cuda: k given without sel");
  if (B <= 0 || N <= 0) return;
  if (M <= 0) throw std::invalid_argument("knn_cuda: empty reference cloud (M = 0)");
  const int sms = sm_count();
  // The batch is the grid's y dimension (at most 65535): larger batches go in slices.
  for (int64_t b0 = 0; b0 < B; b0 += MAX_GRID_YZ) {
    const int64_t bc = (B - b0 < MAX_GRID_YZ) ? (B - b0) : MAX_GRID_YZ;
    const T* xs = x + b0 * N * D;
    const T* ys = y + (y_shared ? int64_t(0) : b0 * M * D);
    const int64_t* ks = k ? k + b0 : nullptr;
    uint8_t* ss = sel ? sel + b0 * N : nullptr;
    if (D == 2) {
      launch_batch<T, 2>(xs, ys, bc, N, M, y_shared, x_len + b0, y_len + b0, ks, idx + b0 * N,
                         dist2 + b0 * N, ss, sms, stream);
    } else {
      launch_batch<T, 3>(xs, ys, bc, N, M, y_shared, x_len + b0, y_len + b0, ks, idx + b0 * N,
                         dist2 + b0 * N, ss, sms, stream);
    }
  }
}

template void knn_cuda<float>(const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool,
                              const int64_t*, const int64_t*, const int64_t*, int64_t*, float*,
                              uint8_t*, cudaStream_t);
template void knn_cuda<double>(const double*, const double*, int64_t, int64_t, int64_t, int64_t,
                               bool, const int64_t*, const int64_t*, const int64_t*, int64_t*,
                               double*, uint8_t*, cudaStream_t);

}  // namespace fe_fast
