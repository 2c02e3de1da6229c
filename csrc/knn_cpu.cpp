// CPU nearest neighbour (contract in knn.h): exact, OpenMP-parallel, with a kd-tree index
// (knn_kdtree.h) built once per distinct reference cloud.
//
// Workload (HOUV, thesis ch. 3): many transformed copies of a cloud (B x N queries) against one
// fixed cloud shared by the batch, or against one cloud per batch element, M ~ 2k..100k, D = 2 or 3.
//  1. Index: one kd-tree per distinct reference cloud: a single one when y is shared (one per
//     distinct y_len in the rare case where a shared y has ragged lengths), else one per batch
//     element, built in parallel (a single large tree builds its big subtrees as OpenMP tasks).
//  2. Queries: parallel over (batch element, block of queries). Within a block the queries are
//     visited in the order of the kd-tree leaf they fall in (a counting sort), so consecutive
//     searches touch the same nodes and each search is warm-started with the distance from its
//     query to the previous query's nearest neighbour: a true upper bound that prunes most of the
//     tree from the start. The search stays exact (see knn_kdtree.h).
//  3. Top-k selection per batch element with nth_element (selection, not a sort).
#include <omp.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <vector>

#include "knn.h"
#include "knn_kdtree.h"

#pragma GCC diagnostic ignored "-Wpsabi"

namespace fe_fast {
namespace {

constexpr int64_t kQueryBlock = 1024;  // queries per parallel work item (a multiple of the packet width)
constexpr int64_t kParallelMinPoints = 16384;  // below this many points (queries + references) one thread

template <typename T, int D>
void knn_impl(const T* x, const T* y, int64_t B, int64_t N, int64_t M, bool y_shared,
              const int64_t* x_len, const int64_t* y_len, int64_t* idx, T* dist2) {
  using Tree = kd::KdTree<T, D>;
  using V = typename Tree::V;
  using I = typename Tree::I;
  constexpr int W = Tree::kLanes;
  auto valid_n = [&](int64_t b) { return std::min<int64_t>(std::max<int64_t>(x_len[b], 0), N); };
  // Small problems run on one thread: waking a team costs more than the work, and on a loaded
  // machine a waiting team member can cost milliseconds (HOUV on 68 landmarks: 32x68 points).
  // Phase 1: the indexes and a spatially coherent (Morton) order of each batch element's queries.
  const bool par = B * (N + M) >= kParallelMinPoints;
  auto forest = kd::build_forest<Tree, T, D>(x, y, B, N, M, y_shared, x_len, y_len, par);
  const std::vector<int64_t>& tree_of = forest.tree_of;
  const std::vector<Tree>& trees = forest.trees;
  const std::vector<int32_t>& order = forest.order;

  // Phase 2: packets of kLanes consecutive queries in Morton order, parallel over blocks.
  std::vector<std::pair<int64_t, int64_t>> items;  // (batch element, first position in order)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = tree_of[b] >= 0 ? valid_n(b) : 0;
    for (int64_t i = 0; i < n; i += kQueryBlock) items.emplace_back(b, i);
    for (int64_t i = n; i < N; ++i) {  // padded queries (and, defensively, empty references)
      idx[b * N + i] = -1;
      dist2[b * N + i] = T(0);
    }
  }
  const int64_t nitems = int64_t(items.size());
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t w = 0; w < nitems; ++w) {
    const int64_t b = items[w].first, s0 = items[w].second;
    const int64_t end = std::min<int64_t>(s0 + kQueryBlock, valid_n(b));
    const Tree& tree = trees[tree_of[b]];
    const T* xb = x + b * N * D;
    const int32_t* ob = order.data() + b * N;
    I arg = I{} + typename Tree::Int(0);  // warm start: the previous packet's neighbours
    bool warm = false;
    for (int64_t s = s0; s < end; s += W) {
      const int cnt = int(std::min<int64_t>(W, end - s));
      int64_t qi[W];
      V q[D];
      for (int l = 0; l < W; ++l) {
        qi[l] = ob[s + std::min(l, cnt - 1)];  // pad a short packet with its last query
        for (int c = 0; c < D; ++c) q[c][l] = xb[qi[l] * D + c];
      }
      V best = V{} + std::numeric_limits<T>::infinity();
      if (warm) {
        V diff[D];
        for (int l = 0; l < W; ++l)
          for (int c = 0; c < D; ++c) diff[c][l] = tree.coord(c, arg[l]);
        for (int c = 0; c < D; ++c) diff[c] = q[c] - diff[c];
        best = kd::sqdist<D>(diff);
      }
      tree.nearest(q, best, arg);
      warm = true;
      for (int l = 0; l < cnt; ++l) {
        idx[b * N + qi[l]] = tree.original_index(arg[l]);
        dist2[b * N + qi[l]] = best[l];
      }
    }
  }
}

}  // namespace

template <typename T>
void knn_cpu(const T* x, const T* y, int64_t B, int64_t N, int64_t M, int64_t D, bool y_shared,
             const int64_t* x_len, const int64_t* y_len, const int64_t* k, int64_t* idx, T* dist2,
             uint8_t* sel) {
  if (D == 2) {
    knn_impl<T, 2>(x, y, B, N, M, y_shared, x_len, y_len, idx, dist2);
  } else {
    knn_impl<T, 3>(x, y, B, N, M, y_shared, x_len, y_len, idx, dist2);
  }
  if (k == nullptr) return;
  // Top-alpha selection by nth_element (selection, not a sort) per batch element.
#pragma omp parallel for schedule(dynamic, 1) if (B * N >= kParallelMinPoints)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = std::min<int64_t>(std::max<int64_t>(x_len[b], 0), N);
    const int64_t kb = std::min<int64_t>(std::max<int64_t>(k[b], 0), n);
    uint8_t* sb = sel + b * N;
    std::fill(sb, sb + N, uint8_t(0));
    if (kb == n) {
      std::fill(sb, sb + n, uint8_t(1));
      continue;
    }
    if (kb == 0) continue;
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), int64_t(0));
    const T* db = dist2 + b * N;
    auto less = [db](int64_t a, int64_t c) { return db[a] < db[c] || (db[a] == db[c] && a < c); };
    std::nth_element(order.begin(), order.begin() + kb, order.end(), less);
    for (int64_t r = 0; r < kb; ++r) sb[order[r]] = 1;
  }
}

template void knn_cpu<float>(const float*, const float*, int64_t, int64_t, int64_t, int64_t, bool,
                             const int64_t*, const int64_t*, const int64_t*, int64_t*, float*, uint8_t*);
template void knn_cpu<double>(const double*, const double*, int64_t, int64_t, int64_t, int64_t, bool,
                              const int64_t*, const int64_t*, const int64_t*, int64_t*, double*,
                              uint8_t*);

}  // namespace fe_fast
