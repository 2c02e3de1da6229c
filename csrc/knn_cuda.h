// CUDA nearest neighbour with top-k selection: same contract as knn.h, launched on the caller's
// stream (asynchronous; raw device pointers). k == nullptr: no selection (sel is not touched and
// may be nullptr). Throws std::invalid_argument for D outside {2, 3} and std::runtime_error when a
// launch fails.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace fe_fast {

template <typename T>
void knn_cuda(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
              const int64_t* x_len, const int64_t* y_len, const int64_t* k, int64_t* idx, T* dist2,
              uint8_t* sel, cudaStream_t stream);

}  // namespace fe_fast
