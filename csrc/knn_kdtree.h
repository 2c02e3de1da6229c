// Exact nearest-neighbour index, used by the CPU kernels for D = 2 or 3 (knn_cpu.cpp, 1 neighbour) and
// 1 <= D <= 8 (knn_topk.cpp, K neighbours through the generic traverse()): a balanced
// kd-tree with leaf buckets and tight per-node bounding boxes, searched by packets of W (8 float,
// 4 double) spatially close queries at once (SIMD across the queries of a packet).
//
// Tree: implicit (node i has children 2i+1 and 2i+2, all leaves on one level), split at the median
// of the widest side of the node's box, so leaves hold between kLeafSize/2 and kLeafSize points.
// Each node stores its tight bounding box (better pruning than the cell for points on a surface),
// internal nodes also the split dimension and value (to pick which child a packet visits first).
// Points are reordered so that each leaf is a contiguous range, stored structure-of-arrays.
//
// Packet search: a depth-first traversal shared by the W queries of a packet; a subtree is entered when its
// box is closer than the current best distance of at least one lane, leaves are scanned for all
// lanes at once (one SIMD distance per point), and each lane keeps its own best distance/index.
// Exactness: a box's lower bound and a point's distance are both computed by sqdist() on coordinate
// differences; for a point inside the box each |difference| is >= the box's, and rounding is
// monotone, so the computed bound never exceeds the computed distance of a point in the box.
// Pruning with `bound < best` thus never drops a strictly closer point: each lane ends with the
// minimum over all points of the distance a brute force computes with the same expression (ties
// may pick either index).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"

namespace fe_fast {
namespace kd {

// SIMD vector of W lanes, one query each (GCC/Clang vector extensions, 32 bytes: AVX/AVX2 with
// -march=native, two SSE2 registers otherwise), and the matching integer vector used for masks
// and point positions.
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  static constexpr int W = 8;
  typedef float V __attribute__((vector_size(W * sizeof(float))));
  typedef int32_t I __attribute__((vector_size(W * sizeof(int32_t))));
  using Int = int32_t;
};
template <>
struct Simd<double> {
  static constexpr int W = 4;
  typedef double V __attribute__((vector_size(W * sizeof(double))));
  typedef int64_t I __attribute__((vector_size(W * sizeof(int64_t))));
  using Int = int64_t;
};

// True if any lane of a comparison mask is set.
template <typename IV>
__attribute__((always_inline)) inline bool any_lane(const IV& m) {
#if defined(__AVX2__)
  static_assert(sizeof(IV) % 32 == 0, "mask size");
  __m256i acc;
  std::memcpy(&acc, &m, 32);
  for (size_t o = 32; o < sizeof(IV); o += 32) {
    __m256i part;
    std::memcpy(&part, reinterpret_cast<const char*>(&m) + o, 32);
    acc = _mm256_or_si256(acc, part);
  }
  return !_mm256_testz_si256(acc, acc);
#else
  constexpr int kLanes = int(sizeof(IV) / sizeof(m[0]));
  for (int l = 0; l < kLanes; ++l)
    if (m[l]) return true;
  return false;
#endif
}

template <typename V>
__attribute__((always_inline)) inline V vmax(const V& a, const V& b) {
  return a > b ? a : b;
}

// Squared norm of a difference vector: the one expression used for point distances and box bounds.
template <int D, typename V>
__attribute__((always_inline)) inline V sqdist(const V* diff) {
  V s = diff[0] * diff[0];
  for (int c = 1; c < D; ++c) s += diff[c] * diff[c];
  return s;
}

template <typename T, int D, int LeafSize = 8>
class KdTree {
 public:
  static constexpr int kLeafSize = LeafSize;  // maximum points per leaf
  using V = typename Simd<T>::V;
  using I = typename Simd<T>::I;
  using Int = typename Simd<T>::Int;
  static constexpr int kLanes = Simd<T>::W;

  // Builds the index over the first n points of y (AoS, stride D); 1 <= n < 2^31.
  // parallel_tasks: build large subtrees as OpenMP tasks (call inside a parallel region).
  void build(const T* y, int64_t n, bool parallel_tasks = false) {
    n_ = n;
    levels_ = 0;
    while ((int64_t(kLeafSize) << levels_) < n) ++levels_;
    first_leaf_ = (int64_t(1) << levels_) - 1;
    const int64_t nodes = 2 * first_leaf_ + 1;
    box_.assign(nodes * 2 * D, T(0));
    split_val_.assign(first_leaf_, T(0));
    split_dim_.assign(first_leaf_, 0);
    leaf_start_.assign(first_leaf_ + 2, 0);
    work_.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      for (int c = 0; c < D; ++c) work_[j].p[c] = y[j * D + c];
      work_[j].id = j;
    }
    build_node(0, 0, n, 0, parallel_tasks);
    leaf_start_[first_leaf_ + 1] = n;  // end of the last leaf
    pts_.resize(n * D);
    ids_.resize(n);
    for (int64_t j = 0; j < n; ++j) {
      for (int c = 0; c < D; ++c) pts_[c * n + j] = work_[j].p[c];
      ids_[j] = work_[j].id;
    }
    std::vector<Item>().swap(work_);
  }

  int64_t size() const { return n_; }
  int64_t original_index(int64_t pos) const { return ids_[pos]; }
  T coord(int c, int64_t pos) const { return pts_[c * n_ + pos]; }
  const T* soa() const { return pts_.data(); }  // coordinate c of reordered position j: soa()[c * size() + j]

  // Generic packet traversal (the K-nearest search of knn_topk.cpp): visits, nearest box first,
  // every leaf whose box lies within `bound` (<=, so that points at exactly the bound, which may
  // win a tie by index, are seen) for at least one lane, and calls leaf(s, e) on its reordered
  // positions [s, e). The callback may lower `bound` (a reference to the caller's variable), which
  // prunes the rest of the traversal. Same bound-vs-distance argument as nearest(): exact.
  template <class Leaf>
  void traverse(const V* q, const V& bound, Leaf&& leaf) const {
    struct Entry {
      V lower;
      int64_t node;
    };
    Entry stack[64];
    int sp = 0;
    T centre[D];
    for (int c = 0; c < D; ++c) {
      T s = 0;
      for (int l = 0; l < kLanes; ++l) s += q[c][l];
      centre[c] = s / T(kLanes);
    }
    int64_t node = 0;
    if (!any_lane(box_dist(q, 0) <= bound)) return;
    for (;;) {
      if (node >= first_leaf_) {
        const int64_t l = node - first_leaf_;
        leaf(leaf_start_[l], leaf_start_[l + 1]);
      } else {
        int64_t a = 2 * node + 1, b = a + 1;
        if (centre[split_dim_[node]] >= split_val_[node]) std::swap(a, b);
        const V da = box_dist(q, a), db = box_dist(q, b);
        const bool va = any_lane(da <= bound);
        if (any_lane(db <= bound)) stack[sp++] = Entry{db, b};
        if (va) {
          node = a;
          continue;
        }
      }
      node = -1;
      while (sp > 0) {
        --sp;
        if (any_lane(stack[sp].lower <= bound)) {
          node = stack[sp].node;
          break;
        }
      }
      if (node < 0) return;
    }
  }

  // Nearest neighbours of a packet of kLanes = W queries (q[c] holds coordinate c of every lane).
  // On entry best/arg may hold candidates per lane (best = exact distance to the point at reordered
  // position arg: a warm start) or +inf; on exit the nearest point of each lane (reordered
  // position) and its squared distance. Only strictly closer points replace a lane's candidate.
  void nearest(const V* q, V& best, I& arg) const {
    struct Entry {
      V bound;
      int64_t node;
    };
    Entry stack[64];
    int sp = 0;
    T centre[D];  // packet centre: decides which child is visited first
    for (int c = 0; c < D; ++c) {
      T s = 0;
      for (int l = 0; l < kLanes; ++l) s += q[c][l];
      centre[c] = s / T(kLanes);
    }
    int64_t node = 0;
    if (!any_lane(box_dist(q, 0) < best)) return;
    for (;;) {
      if (node >= first_leaf_) {
        scan_leaf(q, node - first_leaf_, best, arg);
      } else {
        int64_t a = 2 * node + 1, b = a + 1;
        if (centre[split_dim_[node]] >= split_val_[node]) std::swap(a, b);
        const V da = box_dist(q, a), db = box_dist(q, b);
        const bool va = any_lane(da < best);
        if (any_lane(db < best)) stack[sp++] = Entry{db, b};
        if (va) {
          node = a;
          continue;
        }
      }
      // Pop the most recent pending subtree that can still hold a closer point for some lane.
      node = -1;
      while (sp > 0) {
        --sp;
        if (any_lane(stack[sp].bound < best)) {
          node = stack[sp].node;
          break;
        }
      }
      if (node < 0) return;
    }
  }

 private:
  struct Item {
    T p[D];
    int64_t id;
  };

  __attribute__((always_inline)) V box_dist(const V* q, int64_t node) const {
    const T* lo = &box_[node * 2 * D];
    const T* hi = lo + D;
    V diff[D];
    for (int c = 0; c < D; ++c) diff[c] = vmax(vmax(lo[c] - q[c], q[c] - hi[c]), V{} + T(0));
    return sqdist<D>(diff);
  }

  __attribute__((always_inline)) void scan_leaf(const V* q, int64_t leaf, V& best, I& arg) const {
    const int64_t s = leaf_start_[leaf], e = leaf_start_[leaf + 1];
    for (int64_t j = s; j < e; ++j) {
      V diff[D];
      for (int c = 0; c < D; ++c) diff[c] = q[c] - pts_[c * n_ + j];
      const V d = sqdist<D>(diff);
      const I closer = d < best;
      best = closer ? d : best;
      arg = closer ? (I{} + Int(j)) : arg;
    }
  }

  void build_node(int64_t node, int64_t lo, int64_t hi, int level, bool tasks) {
    T* blo = &box_[node * 2 * D];
    T* bhi = blo + D;
    for (int c = 0; c < D; ++c) {
      blo[c] = std::numeric_limits<T>::infinity();
      bhi[c] = -std::numeric_limits<T>::infinity();
    }
    for (int64_t j = lo; j < hi; ++j) {
      for (int c = 0; c < D; ++c) {
        blo[c] = std::min(blo[c], work_[j].p[c]);
        bhi[c] = std::max(bhi[c], work_[j].p[c]);
      }
    }
    if (level == levels_) {
      leaf_start_[node - first_leaf_] = lo;
      return;
    }
    int dim = 0;
    for (int c = 1; c < D; ++c)
      if (bhi[c] - blo[c] > bhi[dim] - blo[dim]) dim = c;
    const int64_t mid = lo + (hi - lo) / 2;
    std::nth_element(work_.begin() + lo, work_.begin() + mid, work_.begin() + hi,
                     [dim](const Item& u, const Item& v) { return u.p[dim] < v.p[dim]; });
    split_dim_[node] = uint8_t(dim);
    split_val_[node] = work_[mid].p[dim];
    if (tasks && hi - lo > 32768) {
#pragma omp task default(shared) firstprivate(node, lo, mid, level)
      build_node(2 * node + 1, lo, mid, level + 1, true);
      build_node(2 * node + 2, mid, hi, level + 1, true);
#pragma omp taskwait
    } else {
      build_node(2 * node + 1, lo, mid, level + 1, false);
      build_node(2 * node + 2, mid, hi, level + 1, false);
    }
  }

  int64_t n_ = 0;
  int levels_ = 0;
  int64_t first_leaf_ = 0;
  std::vector<T> box_;               // per node: lo[D], hi[D] (tight)
  std::vector<T> split_val_;         // per internal node
  std::vector<uint8_t> split_dim_;   // per internal node
  std::vector<int64_t> leaf_start_;  // per leaf: first reordered position; plus end sentinel
  std::vector<T> pts_;               // SoA: pts_[c * n + j]
  std::vector<int64_t> ids_;         // reordered position -> original index
  std::vector<Item> work_;           // build scratch
};

// Spatially coherent order of n points (AoS, stride D): Morton (Z-order) codes on a grid over their
// bounding box, sorted by a 4-pass LSD radix sort. Writes a permutation of [0, n) to order.
template <typename T, int D>
void morton_order(const T* p, int64_t n, int32_t* order, std::vector<uint32_t>& keys,
                  std::vector<uint32_t>& tmp_keys, std::vector<int32_t>& tmp_order) {
  constexpr int kBits = D == 1 ? 16 : 32 / D;  // 16 bits for D = 2, 10 for D = 3
  T lo[D], hi[D];
  for (int c = 0; c < D; ++c) {
    lo[c] = std::numeric_limits<T>::infinity();
    hi[c] = -std::numeric_limits<T>::infinity();
  }
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < D; ++c) {
      lo[c] = std::min(lo[c], p[i * D + c]);
      hi[c] = std::max(hi[c], p[i * D + c]);
    }
  T scale[D];
  for (int c = 0; c < D; ++c) {
    const T ext = hi[c] - lo[c];
    scale[c] = ext > T(0) ? T((1 << kBits) - 1) / ext : T(0);
  }
  keys.resize(n);
  tmp_keys.resize(n);
  tmp_order.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t key = 0;
    for (int c = 0; c < D; ++c) {
      T f = (p[i * D + c] - lo[c]) * scale[c];
      uint32_t v = f > T(0) ? uint32_t(std::min<T>(f, T((1 << kBits) - 1))) : 0u;
      for (int bit = 0; bit < kBits; ++bit) key |= ((v >> bit) & 1u) << (bit * D + c);
    }
    keys[i] = key;
    order[i] = int32_t(i);
  }
  uint32_t* ka = keys.data();
  uint32_t* kb = tmp_keys.data();
  int32_t* oa = order;
  int32_t* ob = tmp_order.data();
  for (int pass = 0; pass < 4; ++pass) {  // 4 passes: the result ends in the caller's arrays
    const int shift = 8 * pass;
    int64_t count[257] = {0};
    for (int64_t i = 0; i < n; ++i) ++count[((ka[i] >> shift) & 255u) + 1];
    for (int r = 0; r < 256; ++r) count[r + 1] += count[r];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t dst = count[(ka[i] >> shift) & 255u]++;
      kb[dst] = ka[i];
      ob[dst] = oa[i];
    }
    std::swap(ka, kb);
    std::swap(oa, ob);
  }
}

// The kd-trees of a batch and a spatially coherent (Morton) order of each batch element's queries,
// shared by the nearest-neighbour and the K-nearest-neighbour kernels. One tree per distinct
// reference cloud (a shared y: one per distinct valid length); tree_of[b] is -1 where batch element
// b has no valid query or no valid reference point. order[b * N + i] lists b's valid queries.
template <typename Tree>
struct Forest {
  std::vector<int64_t> tree_of;
  std::vector<Tree> trees;
  std::vector<int32_t> order;
};

template <typename Tree, typename T, int D>
Forest<Tree> build_forest(const T* x, const T* y, int64_t B, int64_t N, int64_t M, bool y_shared,
                          const int64_t* x_len, const int64_t* y_len, bool parallel) {
  auto valid_n = [&](int64_t b) { return std::min<int64_t>(std::max<int64_t>(x_len[b], 0), N); };
  Forest<Tree> f;
  f.tree_of.assign(B, -1);
  std::vector<const T*> tree_y;
  std::vector<int64_t> tree_n;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t m = std::min<int64_t>(y_len[b], M);
    if (valid_n(b) <= 0 || m <= 0) continue;
    if (y_shared) {
      const auto it = std::find(tree_n.begin(), tree_n.end(), m);
      if (it != tree_n.end()) {
        f.tree_of[b] = it - tree_n.begin();
        continue;
      }
      tree_y.push_back(y);
    } else {
      tree_y.push_back(y + b * M * D);
    }
    f.tree_of[b] = int64_t(tree_n.size());
    tree_n.push_back(m);
  }
  const int64_t ntrees = int64_t(tree_n.size());
  f.trees.resize(ntrees);
  f.order.resize(B * N);
#pragma omp parallel if (parallel)
  {
    std::vector<uint32_t> keys, tmp_keys;
    std::vector<int32_t> tmp_order;
    if (ntrees == 1 && tree_n[0] > 65536) {
#pragma omp single
      f.trees[0].build(tree_y[0], tree_n[0], true);
    } else {
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t t = 0; t < ntrees; ++t) f.trees[t].build(tree_y[t], tree_n[t], false);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = valid_n(b);
      if (n > 0 && f.tree_of[b] >= 0)
        morton_order<T, D>(x + b * N * D, n, f.order.data() + b * N, keys, tmp_keys, tmp_order);
    }
  }
  return f;
}

}  // namespace kd
}  // namespace fe_fast

#pragma GCC diagnostic pop
