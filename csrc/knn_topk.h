// K nearest neighbours, any dimension: the CPU kernel contract behind fe_fast.ops.knn_topk.
//
// Conventions shared by every function here (those of PyTorch3D's knn_points):
// - rows of a result are sorted by (squared distance, index) ascending: among equal distances the
//   lower index comes first; squared distances are computed from coordinate differences,
//   sum_c (x_c - y_c)^2 accumulated in coordinate order (the "exact" distance of the tests);
// - a query i >= x_len[b] (padding) gets idx -1 and dist2 0 in all K slots; when a cloud has fewer
//   than K valid points (y_len[b] < K) the slots past y_len[b] get idx -1 and dist2 0.
//
// Two exact paths:
// 1. knn_topk_kdtree_cpu: the kd-tree of knn_kdtree.h, packets of W queries in Morton order, a
//    sorted K-list per lane, warm-started by the previous packet's neighbours; 1 <= D <= kKdMaxD.
// 2. The blocked brute force for any D: per query the Kc smallest approximate distances
//    a_j = |y_j|^2 - 2 <x, y_j> (the matrix-product form), either from the fused C++ loop
//    (knn_topk_brute_cpu) or from torch.mm tiles fed to knn_topk_scan_cpu from Python;
//    knn_topk_rerank_cpu then recomputes the Kc candidates from coordinate differences, keeps the
//    K best, and certifies the result with a rounding-error bound of the matrix-product form: if a
//    point outside the candidates could still be closer than the K-th one, that query falls back
//    to an exact scan of every point (so float32 cancellation never changes the answer).
#pragma once
#include <cstdint>

namespace fe_fast {

constexpr int64_t kKdMaxD = 8;  // the kd-tree path is compiled for 1 <= D <= kKdMaxD

// x [B, N, D]; y [B, M, D] or [M, D] (y_shared); x_len, y_len int64 [B] (clamped to [0, N] / [0, M]);
// idx int64 [B, N, K], dist2 [B, N, K]. All C-contiguous.
template <typename T>
void knn_topk_kdtree_cpu(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
                         const int64_t* x_len, const int64_t* y_len, int64_t K, int64_t* idx, T* dist2);

// dot [Q, Mb] = <x_q, y_{j0 + j}> (a torch.mm tile), ynorm [Mb] = |y_{j0 + j}|^2; cand_d/cand_i
// [Q, Kc]: per query the Kc smallest a = ynorm - 2 dot seen so far, ascending (+inf / -1 when
// empty), updated in place. Tiles must be fed in increasing j0 (ties keep the lower index).
template <typename T>
void knn_topk_scan_cpu(const T* dot, int64_t Q, int64_t Mb, const T* ynorm, int64_t j0, int64_t Kc, T* cand_d,
                       int64_t* cand_i);

// xq [Q, D] queries, y [M, D] their reference points, cand_i/cand_d [Q, Kc] from the scan,
// ynorm_max = max_j |y_j|^2. Writes idx/dist2 [Q, K] (K <= Kc unless Kc == M) and returns how
// many queries needed the exact fallback scan.
template <typename T>
int64_t knn_topk_rerank_cpu(const T* xq, int64_t Q, const T* y, int64_t M, int64_t D, const int64_t* cand_i,
                            const T* cand_d, int64_t Kc, T ynorm_max, int64_t K, int64_t* idx, T* dist2);

// The whole blocked brute force in C++: candidates from a register-blocked GEMM-like loop fused
// with the running top-Kc (Kc = min(M, max(2K, K + 8))), then knn_topk_rerank_cpu. xq [Q, D],
// y [M, D]; writes idx/dist2 [Q, K]; returns the number of exact fallback scans.
template <typename T>
int64_t knn_topk_brute_cpu(const T* xq, int64_t Q, const T* y, int64_t M, int64_t D, int64_t K, int64_t* idx,
                           T* dist2);

}  // namespace fe_fast
