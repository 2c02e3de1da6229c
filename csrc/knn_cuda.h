// CUDA nearest neighbour: same contract as knn.h, launched on the caller's stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fe_fast {

template <typename T>
void knn_cuda(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
              const int64_t* x_len, const int64_t* y_len, int64_t* idx, T* dist2,
              cudaStream_t stream);

}  // namespace fe_fast
