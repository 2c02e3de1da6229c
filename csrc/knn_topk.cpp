// K nearest neighbours on the CPU (contract and conventions in knn_topk.h): the kd-tree path and
// the two C++ halves (running top-Kc scan, certified exact re-rank) of the blocked brute force.
#include "knn_topk.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "knn_kdtree.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace fe_fast {
namespace {

constexpr int64_t kQueryBlock = 1024;          // queries per parallel work item
constexpr int64_t kParallelMinWork = 16384;    // below this many points (or tile entries / 16), one thread
#ifndef FE_FAST_TOPK_LEAF
#define FE_FAST_TOPK_LEAF 16
#endif
constexpr int kTopkLeafSize = FE_FAST_TOPK_LEAF;  // points per kd-tree leaf (measured: see the bench)

// (d, j) < (bd, bj): the order of every result row.
template <typename T>
inline bool before(T d, int64_t j, T bd, int64_t bj) {
  return d < bd || (d == bd && j < bj);
}

// Inserts (d, j) into the sorted list (ld, li) of length k if it beats the last entry.
template <typename T>
inline void insert_sorted(T* ld, int64_t* li, int64_t k, T d, int64_t j) {
  if (!before(d, j, ld[k - 1], li[k - 1])) return;
  int64_t p = k - 1;
  while (p > 0 && before(d, j, ld[p - 1], li[p - 1])) {
    ld[p] = ld[p - 1];
    li[p] = li[p - 1];
    --p;
  }
  ld[p] = d;
  li[p] = j;
}

template <typename T>
inline T sq_diff(const T* a, const T* b, int64_t D) {
  T s = T(0);
  for (int64_t c = 0; c < D; ++c) {
    const T t = a[c] - b[c];
    s += t * t;
  }
  return s;
}

template <typename T, int D>
void topk_kdtree_impl(const T* x, const T* y, int64_t B, int64_t N, int64_t M, bool y_shared,
                      const int64_t* x_len, const int64_t* y_len, int64_t K, int64_t* idx, T* dist2) {
  using Tree = kd::KdTree<T, D, kTopkLeafSize>;
  using V = typename Tree::V;
  constexpr int W = Tree::kLanes;
  constexpr T kInf = std::numeric_limits<T>::infinity();
  auto valid_n = [&](int64_t b) { return std::min<int64_t>(std::max<int64_t>(x_len[b], 0), N); };
  auto valid_m = [&](int64_t b) { return std::min<int64_t>(std::max<int64_t>(y_len[b], 0), M); };
  const bool par = B * (N + M) >= kParallelMinWork;
  auto forest = kd::build_forest<Tree, T, D>(x, y, B, N, M, y_shared, x_len, y_len, par);
  const std::vector<int64_t>& tree_of = forest.tree_of;
  const std::vector<Tree>& trees = forest.trees;
  const std::vector<int32_t>& order = forest.order;

  // Padding first: padded queries, empty references, slots past y_len.
  std::vector<std::pair<int64_t, int64_t>> items;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = tree_of[b] >= 0 ? valid_n(b) : 0;
    for (int64_t i = 0; i < n; i += kQueryBlock) items.emplace_back(b, i);
    const int64_t keff = tree_of[b] >= 0 ? std::min<int64_t>(K, valid_m(b)) : 0;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t k = (i < n ? keff : 0); k < K; ++k) {
        idx[(b * N + i) * K + k] = -1;
        dist2[(b * N + i) * K + k] = T(0);
      }
  }
  const int64_t nitems = int64_t(items.size());
  const T inflate = T(1) + T(16) * std::numeric_limits<T>::epsilon();
  using I = typename Tree::I;
  using Int = typename Tree::Int;
#pragma omp parallel if (par)
  {
    // Per packet, K sorted lists kept as K vectors (list position k of every lane in one vector),
    // so an insertion is K branch-free vector steps for all lanes at once.
    std::vector<V> bd(K);
    std::vector<I> bi(K);
    std::vector<I> before_k(K);
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < nitems; ++w) {
      const int64_t b = items[w].first, s0 = items[w].second;
      const int64_t end = std::min<int64_t>(s0 + kQueryBlock, valid_n(b));
      const Tree& tree = trees[tree_of[b]];
      const int64_t keff = std::min<int64_t>(K, tree.size());
      const int64_t tn = tree.size();
      const T* soa = tree.soa();
      const T* yb = y_shared ? y : y + b * M * D;
      const T* xb = x + b * N * D;
      const int32_t* ob = order.data() + b * N;
      bool warm = false;
      for (int64_t s = s0; s < end; s += W) {
        const int cnt = int(std::min<int64_t>(W, end - s));
        int64_t qi[W];
        V q[D];
        for (int l = 0; l < W; ++l) {
          qi[l] = ob[s + std::min(l, cnt - 1)];  // a short packet repeats its last query
          for (int c = 0; c < D; ++c) q[c][l] = xb[qi[l] * D + c];
        }
        // Warm start: the previous packet's K neighbours of the same lane are K distinct points,
        // so the largest distance to them bounds this query's K-th distance (inflated by a few
        // ulps: the scalar and vector sums may round differently).
        V bound = V{} + kInf;
        if (warm) {
          V mx = V{} + T(0);
          for (int64_t k = 0; k < keff; ++k) {
            V diff[D];
            for (int l = 0; l < W; ++l) {
              const T* p = yb + int64_t(bi[k][l]) * D;
              for (int c = 0; c < D; ++c) diff[c][l] = p[c];
            }
            for (int c = 0; c < D; ++c) diff[c] = q[c] - diff[c];
            mx = kd::vmax(mx, kd::sqdist<D>(diff));
          }
          bound = mx * inflate;
        }
        const V warm_bound = bound;
        for (int64_t k = 0; k < keff; ++k) {
          bd[k] = V{} + kInf;
          bi[k] = I{} + std::numeric_limits<Int>::max();
        }
        V* ld = bd.data();
        I* li = bi.data();
        I* bk = before_k.data();
        const int64_t last = keff - 1;
        auto leaf = [&](int64_t a, int64_t e) {
          for (int64_t j = a; j < e; ++j) {
            V diff[D];
            for (int c = 0; c < D; ++c) diff[c] = q[c] - soa[c * tn + j];
            const V d = kd::sqdist<D>(diff);
            if (!kd::any_lane(d <= bound)) continue;
            const I id = I{} + Int(tree.original_index(j));
            // (d, id) before (ld[k], li[k]), per lane; ids are distinct, so "not before" = "after".
            for (int64_t k = 0; k <= last; ++k) bk[k] = (d < ld[k]) | ((d == ld[k]) & (id < li[k]));
            if (!kd::any_lane(bk[last])) continue;
            for (int64_t k = last; k > 0; --k) {
              ld[k] = bk[k - 1] ? ld[k - 1] : (bk[k] ? d : ld[k]);
              li[k] = bk[k - 1] ? li[k - 1] : (bk[k] ? id : li[k]);
            }
            ld[0] = bk[0] ? d : ld[0];
            li[0] = bk[0] ? id : li[0];
            bound = warm_bound < ld[last] ? warm_bound : ld[last];
          }
        };
        tree.traverse(q, bound, leaf);
        warm = true;
        for (int l = 0; l < cnt; ++l) {
          int64_t* oi = idx + (b * N + qi[l]) * K;
          T* od = dist2 + (b * N + qi[l]) * K;
          for (int64_t k = 0; k < keff; ++k) {
            oi[k] = li[k][l];
            od[k] = ld[k][l];
          }
        }
      }
    }
  }
}

template <typename T, int D>
bool try_kdtree(int64_t d, const T* x, const T* y, int64_t B, int64_t N, int64_t M, bool y_shared,
                const int64_t* x_len, const int64_t* y_len, int64_t K, int64_t* idx, T* dist2) {
  if (d != D) return false;
  topk_kdtree_impl<T, D>(x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2);
  return true;
}

}  // namespace

template <typename T>
void knn_topk_kdtree_cpu(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
                         const int64_t* x_len, const int64_t* y_len, int64_t K, int64_t* idx, T* dist2) {
  static_assert(kKdMaxD == 8, "instantiate every D up to kKdMaxD");
  (void)(try_kdtree<T, 1>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 2>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 3>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 4>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 5>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 6>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 7>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2) ||
         try_kdtree<T, 8>(D, x, y, B, N, M, y_shared, x_len, y_len, K, idx, dist2));
}

template <typename T>
void knn_topk_scan_cpu(const T* dot, int64_t Q, int64_t Mb, const T* ynorm, int64_t j0, int64_t Kc, T* cand_d,
                       int64_t* cand_i) {
  constexpr int64_t L = 16;  // entries tested per vectorised step
  // One thread: the caller alternates this scan with torch.mm on torch's own thread pool, and
  // handing the cores between two OpenMP runtimes on every tile cost more than the scan (measured
  // in CPU time on the D = 64 bench row); the scan is a small part of the work.
  for (int64_t q = 0; q < Q; ++q) {
    const T* row = dot + q * Mb;
    T* ld = cand_d + q * Kc;
    int64_t* li = cand_i + q * Kc;
    T thr = ld[Kc - 1];
    int64_t j = 0;
    for (; j + L <= Mb; j += L) {
      T a[L];
      bool any = false;
      for (int64_t l = 0; l < L; ++l) {
        a[l] = ynorm[j + l] - T(2) * row[j + l];
        any |= a[l] < thr;
      }
      if (!any) continue;
      for (int64_t l = 0; l < L; ++l)
        if (a[l] < thr) {
          insert_sorted(ld, li, Kc, a[l], j0 + j + l);
          thr = ld[Kc - 1];
        }
    }
    for (; j < Mb; ++j) {
      const T a = ynorm[j] - T(2) * row[j];
      if (a < thr) {
        insert_sorted(ld, li, Kc, a, j0 + j);
        thr = ld[Kc - 1];
      }
    }
  }
}

template <typename T>
int64_t knn_topk_rerank_cpu(const T* xq, int64_t Q, const T* y, int64_t M, int64_t D, const int64_t* cand_i,
                            const T* cand_d, int64_t Kc, T ynorm_max, int64_t K, int64_t* idx, T* dist2) {
  const int64_t keff = std::min(K, M);
  const T u = std::numeric_limits<T>::epsilon() / 2;  // unit roundoff
  // Bound on |a_j + |x|^2 - |x - y_j|^2| for the matrix-product form, generous for any BLAS
  // summation order (gamma_D-type bound, Higham ch. 3), plus the rounding of the exact form.
  const T err_rel = T(4 * D + 16) * u;
  const bool all_candidates = Kc >= M;
  int64_t fallbacks = 0;
#pragma omp parallel if (Q * Kc * D >= 16 * kParallelMinWork) reduction(+ : fallbacks)
  {
    std::vector<T> ld(std::max<int64_t>(Kc, K));
    std::vector<int64_t> li(std::max<int64_t>(Kc, K));
#pragma omp for schedule(dynamic, 64)
    for (int64_t q = 0; q < Q; ++q) {
      const T* xp = xq + q * D;
      std::fill(ld.begin(), ld.begin() + keff, std::numeric_limits<T>::infinity());
      std::fill(li.begin(), li.begin() + keff, std::numeric_limits<int64_t>::max());
      int64_t found = 0;
      for (int64_t k = 0; k < Kc; ++k) {
        const int64_t j = cand_i[q * Kc + k];
        if (j < 0) continue;
        ++found;
        insert_sorted(ld.data(), li.data(), keff, sq_diff(xp, y + j * D, D), j);
      }
      bool certified = all_candidates && found >= keff;
      if (!certified && found == Kc) {
        T xn = T(0);
        for (int64_t c = 0; c < D; ++c) xn += xp[c] * xp[c];
        const T worst_out = cand_d[q * Kc + Kc - 1] + xn;  // no point outside is (approximately) closer
        const T err = err_rel * (xn + ynorm_max) * T(2);
        certified = std::isfinite(worst_out) && ld[keff - 1] * (T(1) + err_rel) + err < worst_out;
      }
      if (!certified) {  // exact scan of every point
        ++fallbacks;
        std::fill(ld.begin(), ld.begin() + keff, std::numeric_limits<T>::infinity());
        std::fill(li.begin(), li.begin() + keff, std::numeric_limits<int64_t>::max());
        for (int64_t j = 0; j < M; ++j) insert_sorted(ld.data(), li.data(), keff, sq_diff(xp, y + j * D, D), j);
      }
      for (int64_t k = 0; k < K; ++k) {
        idx[q * K + k] = k < keff ? li[k] : -1;
        dist2[q * K + k] = k < keff ? ld[k] : T(0);
      }
    }
  }
  return fallbacks;
}

namespace {

// Fused blocked brute force: distance tiles by a register-blocked GEMM-like loop (R query rows x
// 2 SIMD vectors of references per step, every coordinate an FMA), scanned while still in
// registers against each row's running Kc-th candidate. One OpenMP team, no tile in memory.
template <typename T>
struct Wide {
  static constexpr int W = 64 / int(sizeof(T));  // lanes per 64-byte vector (AVX-512 register)
  typedef T V __attribute__((vector_size(64)));
};

template <typename T>
void brute_candidates(const T* xq, int64_t Q, const T* y, int64_t M, int64_t D, int64_t Kc, T* cand_d,
                      int64_t* cand_i) {
  using V = typename Wide<T>::V;
  constexpr int W = Wide<T>::W;
  constexpr int R = 8;          // query rows per register block
  constexpr int C = 2 * W;      // references per register block
  constexpr int64_t kRefBlock = 512;   // references per cache block (D * 512 values of yT in L2)
  constexpr int64_t kRowBlock = 64;    // query rows per parallel work item
  const int64_t Mp = (M + C - 1) / C * C;
  // y transposed and padded: yT[c * Mp + j]; padded references get |y|^2 = +inf (never taken).
  std::vector<T> yT(size_t(D * Mp), T(0));
  std::vector<T> yn(size_t(Mp), std::numeric_limits<T>::infinity());
  for (int64_t j = 0; j < M; ++j) {
    T s = T(0);
    for (int64_t c = 0; c < D; ++c) {
      const T v = y[j * D + c];
      yT[c * Mp + j] = v;
      s += v * v;
    }
    yn[j] = s;
  }
  const int64_t nblocks = (Q + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(dynamic, 1) if (Q * M * D >= 64 * kParallelMinWork)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const int64_t r_begin = blk * kRowBlock, r_end = std::min(Q, r_begin + kRowBlock);
    for (int64_t j_blk = 0; j_blk < Mp; j_blk += kRefBlock) {
      const int64_t j_end = std::min(Mp, j_blk + kRefBlock);
      for (int64_t r0 = r_begin; r0 < r_end; r0 += R) {
        const T* xr[R];
        T thr[R];
        for (int r = 0; r < R; ++r) {
          const int64_t row = std::min(r0 + r, r_end - 1);  // a short block repeats its last row
          xr[r] = xq + row * D;
          thr[r] = cand_d[row * Kc + Kc - 1];
        }
        for (int64_t j = j_blk; j < j_end; j += C) {
          V acc[R][2];
          for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = V{} + T(0);
          const T* yc = yT.data() + j;
          for (int64_t c = 0; c < D; ++c, yc += Mp) {
            V y0, y1;
            std::memcpy(&y0, yc, sizeof(V));
            std::memcpy(&y1, yc + W, sizeof(V));
            for (int r = 0; r < R; ++r) {
              const V xv = V{} + xr[r][c];
              acc[r][0] += xv * y0;
              acc[r][1] += xv * y1;
            }
          }
          V n0, n1;
          std::memcpy(&n0, yn.data() + j, sizeof(V));
          std::memcpy(&n1, yn.data() + j + W, sizeof(V));
          for (int r = 0; r < R; ++r) {
            if (r0 + r >= r_end) break;
            const V a0 = n0 - T(2) * acc[r][0], a1 = n1 - T(2) * acc[r][1];
            const V t = V{} + thr[r];
            if (!kd::any_lane((a0 < t) | (a1 < t))) continue;
            T* ld = cand_d + (r0 + r) * Kc;
            int64_t* li = cand_i + (r0 + r) * Kc;
            for (int l = 0; l < C; ++l) {
              const T a = l < W ? a0[l] : a1[l - W];
              if (a < thr[r]) {
                insert_sorted(ld, li, Kc, a, j + l);
                thr[r] = ld[Kc - 1];
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

template <typename T>
int64_t knn_topk_brute_cpu(const T* xq, int64_t Q, const T* y, int64_t M, int64_t D, int64_t K, int64_t* idx,
                           T* dist2) {
  const int64_t Kc = std::min<int64_t>(M, std::max<int64_t>(2 * K, K + 8));
  std::vector<T> cand_d(size_t(Q * Kc), std::numeric_limits<T>::infinity());
  std::vector<int64_t> cand_i(size_t(Q * Kc), -1);
  T ymax = T(0);
  if (Kc >= M) {  // every point is a candidate
    for (int64_t q = 0; q < Q; ++q)
      for (int64_t j = 0; j < M; ++j) cand_i[q * Kc + j] = j;
  } else {
    brute_candidates(xq, Q, y, M, D, Kc, cand_d.data(), cand_i.data());
    for (int64_t j = 0; j < M; ++j) {
      T s = T(0);
      for (int64_t c = 0; c < D; ++c) s += y[j * D + c] * y[j * D + c];
      ymax = std::max(ymax, s);
    }
  }
  return knn_topk_rerank_cpu<T>(xq, Q, y, M, D, cand_i.data(), cand_d.data(), Kc, ymax, K, idx, dist2);
}

#define FE_FAST_TOPK_INSTANTIATE(T)                                                                          \
  template void knn_topk_kdtree_cpu<T>(const T*, const T*, int64_t, int64_t, int64_t, int64_t, bool,         \
                                       const int64_t*, const int64_t*, int64_t, int64_t*, T*);               \
  template void knn_topk_scan_cpu<T>(const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*, int64_t*);   \
  template int64_t knn_topk_rerank_cpu<T>(const T*, int64_t, const T*, int64_t, int64_t, const int64_t*,      \
                                          const T*, int64_t, T, int64_t, int64_t*, T*);                      \
  template int64_t knn_topk_brute_cpu<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, int64_t*, T*);
FE_FAST_TOPK_INSTANTIATE(float)
FE_FAST_TOPK_INSTANTIATE(double)

}  // namespace fe_fast
