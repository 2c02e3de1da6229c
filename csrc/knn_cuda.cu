// CUDA nearest neighbour (contract in knn.h). First version: one thread per query, reference
// points streamed through shared memory in tiles; selection by per-batch radix-free bisection is
// left to the Python layer (torch.topk) until the fused selection lands.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "knn_cuda.h"

namespace fe_fast {

template <typename T, int D, int TILE>
__global__ void knn_kernel(const T* __restrict__ x, const T* __restrict__ y, int64_t N, int64_t M,
                           bool y_shared, const int64_t* __restrict__ x_len,
                           const int64_t* __restrict__ y_len, int64_t* __restrict__ idx,
                           T* __restrict__ dist2) {
  __shared__ T tile[TILE * D];
  const int64_t b = blockIdx.y;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t xl = x_len[b], yl = y_len[b];
  const bool valid = i < xl;
  T q[D];
  if (valid) {
#pragma unroll
    for (int c = 0; c < D; ++c) q[c] = x[(b * N + i) * D + c];
  }
  const T* yb = y + (y_shared ? 0 : b * M * D);
  T best = sizeof(T) == 4 ? T(3.0e38f) : T(1e300);
  int64_t arg = -1;
  for (int64_t start = 0; start < yl; start += TILE) {
    const int64_t count = (yl - start < TILE) ? (yl - start) : int64_t(TILE);
    for (int64_t t = threadIdx.x; t < count * D; t += blockDim.x) tile[t] = yb[start * D + t];
    __syncthreads();
    if (valid) {
      for (int64_t j = 0; j < count; ++j) {
        T d = 0;
#pragma unroll
        for (int c = 0; c < D; ++c) {
          const T diff = q[c] - tile[j * D + c];
          d += diff * diff;
        }
        if (d < best) {
          best = d;
          arg = start + j;
        }
      }
    }
    __syncthreads();
  }
  if (i < N) {
    idx[b * N + i] = valid ? arg : -1;
    dist2[b * N + i] = valid ? best : T(0);
  }
}

template <typename T>
void knn_cuda(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
              const int64_t* x_len, const int64_t* y_len, int64_t* idx, T* dist2,
              cudaStream_t stream) {
  constexpr int THREADS = 256;
  constexpr int TILE = 256;
  dim3 grid((N + THREADS - 1) / THREADS, B);
  if (D == 2) {
    knn_kernel<T, 2, TILE><<<grid, THREADS, 0, stream>>>(x, y, N, M, y_shared, x_len, y_len, idx, dist2);
  } else if (D == 3) {
    knn_kernel<T, 3, TILE><<<grid, THREADS, 0, stream>>>(x, y, N, M, y_shared, x_len, y_len, idx, dist2);
  } else {
    throw std::invalid_argument("knn_cuda: D must be 2 or 3");
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("knn_cuda: ") + cudaGetErrorString(err));
}

template void knn_cuda<float>(const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool,
                              const int64_t*, const int64_t*, int64_t*, float*, cudaStream_t);
template void knn_cuda<double>(const double*, const double*, int64_t, int64_t, int64_t, int64_t,
                               bool, const int64_t*, const int64_t*, int64_t*, double*,
                               cudaStream_t);

}  // namespace fe_fast
