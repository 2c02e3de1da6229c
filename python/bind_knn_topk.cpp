// Binding of the K-nearest-neighbour CPU kernels (contract in csrc/knn_topk.h). Arguments are numpy
// arrays (zero-copy views of contiguous CPU tensors: tensor.numpy()); every rank, size, dtype,
// C-contiguity, writability, index range and output overlap is checked here (python/array_checks.h):
// a bad argument raises ValueError naming the function and the argument before any memory is
// touched. Outputs are allocated by the caller and passed in.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "array_checks.h"
#include "knn_topk.h"

namespace py = pybind11;
using namespace fe_fast_bind;

namespace {

template <typename T>
constexpr Kind kind_of() {
  return sizeof(T) == 8 ? Kind::f64 : Kind::f32;
}

// int64 lengths [B], each in [0, max_len] (they bound the kernels' reads).
void check_lengths(const char* fn, const char* name, const py::array& a, int64_t B, int64_t max_len) {
  check(fn, name, a, Kind::i64, {B});
  const int64_t* p = cptr<int64_t>(a);
  for (int64_t b = 0; b < B; ++b)
    if (p[b] < 0 || p[b] > max_len)
      fail(fn, std::string(name) + "[" + std::to_string(b) + "] = " + std::to_string(p[b]) + " is outside [0, " +
                   std::to_string(max_len) + "]");
}

template <typename T>
void kdtree(py::array x, py::array y, py::array x_len, py::array y_len, int64_t K, py::array idx, py::array dist2) {
  const char* fn = "knn_topk_kdtree";
  constexpr Kind f = kind_of<T>();
  check(fn, "x", x, f, {-1, -1, -1});
  const int64_t B = x.shape(0), N = x.shape(1), D = x.shape(2);
  const bool shared = y.ndim() == 2;
  if (shared)
    check(fn, "y", y, f, {-1, D});
  else
    check(fn, "y", y, f, {B, -1, D});
  const int64_t M = y.shape(y.ndim() - 2);
  if (D < 1 || D > fe_fast::kKdMaxD)
    fail(fn, "the kd-tree path needs 1 <= D <= " + std::to_string(fe_fast::kKdMaxD) + ", got D=" + std::to_string(D));
  if (K < 1) fail(fn, "K must be >= 1, got " + std::to_string(K));
  check_lengths(fn, "x_len", x_len, B, N);
  check_lengths(fn, "y_len", y_len, B, M);
  check_out(fn, "idx", idx, Kind::i64, {B, N, K});
  check_out(fn, "dist2", dist2, f, {B, N, K});
  check_disjoint(fn, {{"idx", idx}, {"dist2", dist2}}, {{"x", x}, {"y", y}, {"x_len", x_len}, {"y_len", y_len}});
  const T* xp = cptr<T>(x);
  const T* yp = cptr<T>(y);
  const int64_t* xl = cptr<int64_t>(x_len);
  const int64_t* yl = cptr<int64_t>(y_len);
  int64_t* ip = mptr<int64_t>(idx);
  T* dp = mptr<T>(dist2);
  py::gil_scoped_release release;
  fe_fast::knn_topk_kdtree_cpu<T>(xp, yp, B, N, M, D, shared, xl, yl, K, ip, dp);
}

template <typename T>
void scan(py::array dot, py::array ynorm, int64_t j0, py::array cand_d, py::array cand_i) {
  const char* fn = "knn_topk_scan";
  constexpr Kind f = kind_of<T>();
  check(fn, "dot", dot, f, {-1, -1});
  const int64_t Q = dot.shape(0), Mb = dot.shape(1);
  check(fn, "ynorm", ynorm, f, {Mb});
  check_out(fn, "cand_d", cand_d, f, {Q, -1});
  const int64_t Kc = cand_d.shape(1);
  if (Kc < 1) fail(fn, "cand_d must have at least one column");
  check_out(fn, "cand_i", cand_i, Kind::i64, {Q, Kc});
  if (j0 < 0) fail(fn, "j0 must be >= 0, got " + std::to_string(j0));
  check_disjoint(fn, {{"cand_d", cand_d}, {"cand_i", cand_i}}, {{"dot", dot}, {"ynorm", ynorm}});
  const T* dp = cptr<T>(dot);
  const T* np_ = cptr<T>(ynorm);
  T* cd = mptr<T>(cand_d);
  int64_t* ci = mptr<int64_t>(cand_i);
  py::gil_scoped_release release;
  fe_fast::knn_topk_scan_cpu<T>(dp, Q, Mb, np_, j0, Kc, cd, ci);
}

template <typename T>
int64_t rerank(py::array xq, py::array y, py::array cand_i, py::array cand_d, double ynorm_max, int64_t K,
               py::array idx, py::array dist2) {
  const char* fn = "knn_topk_rerank";
  constexpr Kind f = kind_of<T>();
  check(fn, "xq", xq, f, {-1, -1});
  const int64_t Q = xq.shape(0), D = xq.shape(1);
  check(fn, "y", y, f, {-1, D});
  const int64_t M = y.shape(0);
  check(fn, "cand_i", cand_i, Kind::i64, {Q, -1});
  const int64_t Kc = cand_i.shape(1);
  check(fn, "cand_d", cand_d, f, {Q, Kc});
  if (K < 1) fail(fn, "K must be >= 1, got " + std::to_string(K));
  if (Kc < 1) fail(fn, "cand_i must have at least one column");
  if (M < 1) fail(fn, "y must hold at least one point");
  if (Kc < M && Kc < K)
    fail(fn, "cand_i has fewer columns (" + std::to_string(Kc) + ") than K=" + std::to_string(K));
  check_out(fn, "idx", idx, Kind::i64, {Q, K});
  check_out(fn, "dist2", dist2, f, {Q, K});
  check_disjoint(fn, {{"idx", idx}, {"dist2", dist2}},
                 {{"xq", xq}, {"y", y}, {"cand_i", cand_i}, {"cand_d", cand_d}});
  const int64_t* ci = cptr<int64_t>(cand_i);
  for (int64_t t = 0; t < Q * Kc; ++t)  // the candidates index y: range-checked before any read
    if (ci[t] < -1 || ci[t] >= M)
      fail(fn, "cand_i holds " + std::to_string(ci[t]) + ", outside [-1, " + std::to_string(M) + ")");
  const T* xp = cptr<T>(xq);
  const T* yp = cptr<T>(y);
  const T* cd = cptr<T>(cand_d);
  int64_t* ip = mptr<int64_t>(idx);
  T* dp = mptr<T>(dist2);
  py::gil_scoped_release release;
  return fe_fast::knn_topk_rerank_cpu<T>(xp, Q, yp, M, D, ci, cd, Kc, T(ynorm_max), K, ip, dp);
}

template <typename T>
int64_t brute(py::array xq, py::array y, int64_t K, py::array idx, py::array dist2) {
  const char* fn = "knn_topk_brute";
  constexpr Kind f = kind_of<T>();
  check(fn, "xq", xq, f, {-1, -1});
  const int64_t Q = xq.shape(0), D = xq.shape(1);
  check(fn, "y", y, f, {-1, D});
  const int64_t M = y.shape(0);
  if (K < 1) fail(fn, "K must be >= 1, got " + std::to_string(K));
  if (M < 1) fail(fn, "y must hold at least one point");
  if (D < 1) fail(fn, "points must have D >= 1");
  check_out(fn, "idx", idx, Kind::i64, {Q, K});
  check_out(fn, "dist2", dist2, f, {Q, K});
  check_disjoint(fn, {{"idx", idx}, {"dist2", dist2}}, {{"xq", xq}, {"y", y}});
  const T* xp = cptr<T>(xq);
  const T* yp = cptr<T>(y);
  int64_t* ip = mptr<int64_t>(idx);
  T* dp = mptr<T>(dist2);
  py::gil_scoped_release release;
  return fe_fast::knn_topk_brute_cpu<T>(xp, Q, yp, M, D, K, ip, dp);
}

}  // namespace

void bind_knn_topk(py::module_& m) {
  m.attr("knn_topk_kdtree_max_d") = fe_fast::kKdMaxD;
  m.def(
      "knn_topk_kdtree",
      [](py::array x, py::array y, py::array x_len, py::array y_len, int64_t K, py::array idx, py::array dist2) {
        if (float_kind("knn_topk_kdtree", "x", x) == Kind::f64)
          kdtree<double>(x, y, x_len, y_len, K, idx, dist2);
        else
          kdtree<float>(x, y, x_len, y_len, K, idx, dist2);
      },
      py::arg("x"), py::arg("y"), py::arg("x_len"), py::arg("y_len"), py::arg("K"), py::arg("idx"),
      py::arg("dist2"),
      "K nearest neighbours by kd-tree (1 <= D <= knn_topk_kdtree_max_d): x [B,N,D], y [B,M,D] or [M,D], "
      "x_len/y_len int64 [B], outputs idx int64 [B,N,K] and dist2 [B,N,K] (x's dtype), written in place.");
  m.def(
      "knn_topk_scan",
      [](py::array dot, py::array ynorm, int64_t j0, py::array cand_d, py::array cand_i) {
        if (float_kind("knn_topk_scan", "dot", dot) == Kind::f64)
          scan<double>(dot, ynorm, j0, cand_d, cand_i);
        else
          scan<float>(dot, ynorm, j0, cand_d, cand_i);
      },
      py::arg("dot"), py::arg("ynorm"), py::arg("j0"), py::arg("cand_d"), py::arg("cand_i"),
      "Running top-Kc of |y|^2 - 2<x,y> over a dot-product tile [Q,Mb] (references j0..j0+Mb-1); "
      "cand_d/cand_i [Q,Kc] updated in place.");
  m.def(
      "knn_topk_brute",
      [](py::array xq, py::array y, int64_t K, py::array idx, py::array dist2) {
        if (float_kind("knn_topk_brute", "xq", xq) == Kind::f64) return brute<double>(xq, y, K, idx, dist2);
        return brute<float>(xq, y, K, idx, dist2);
      },
      py::arg("xq"), py::arg("y"), py::arg("K"), py::arg("idx"), py::arg("dist2"),
      "Exact K nearest rows of y [M,D] for each row of xq [Q,D] by the fused blocked brute force "
      "(GEMM-like tiles + running top-Kc + certified re-rank), outputs idx/dist2 [Q,K] written in place; "
      "returns the number of queries that fell back to an exact full scan.");
  m.def(
      "knn_topk_rerank",
      [](py::array xq, py::array y, py::array cand_i, py::array cand_d, double ynorm_max, int64_t K, py::array idx,
         py::array dist2) {
        if (float_kind("knn_topk_rerank", "xq", xq) == Kind::f64) return rerank<double>(xq, y, cand_i, cand_d, ynorm_max, K, idx, dist2);
        return rerank<float>(xq, y, cand_i, cand_d, ynorm_max, K, idx, dist2);
      },
      py::arg("xq"), py::arg("y"), py::arg("cand_i"), py::arg("cand_d"), py::arg("ynorm_max"), py::arg("K"),
      py::arg("idx"), py::arg("dist2"),
      "Exact re-rank of the scan's candidates (coordinate differences), certified against the rounding of "
      "the matrix-product form; returns the number of queries that fell back to an exact full scan.");
}
