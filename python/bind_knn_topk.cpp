// Binding of the K-nearest-neighbour CPU kernels (contract in csrc/knn_topk.h). Arguments are numpy
// arrays (zero-copy views of contiguous CPU tensors: tensor.numpy()); every rank, size, dtype,
// C-contiguity, writability and index range is checked here, and a bad argument raises ValueError
// before any memory is touched. Outputs are allocated by the caller and passed in.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "knn_topk.h"

namespace py = pybind11;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

std::string shape_of(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s += (d ? ", " : "") + std::to_string(a.shape(d));
  return s + "]";
}

// Checks rank, dtype and C-contiguity (and writability for outputs) of one array argument.
template <typename T>
void check(const py::array& a, const char* name, py::ssize_t ndim, bool output = false) {
  if (a.ndim() != ndim)
    fail(std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got shape " + shape_of(a));
  if (!a.dtype().is(py::dtype::of<T>()))
    fail(std::string(name) + " has dtype " + std::string(py::str(a.dtype())) + ", expected " +
         std::string(py::str(py::dtype::of<T>())));
  if (!(a.flags() & py::array::c_style)) fail(std::string(name) + " must be C-contiguous");
  if (output && !a.writeable()) fail(std::string(name) + " must be writeable");
}

void check_dim(const py::array& a, const char* name, py::ssize_t d, int64_t expected) {
  if (a.shape(d) != expected)
    fail(std::string(name) + " has shape " + shape_of(a) + ": dimension " + std::to_string(d) + " must be " +
         std::to_string(expected));
}

bool is_float64(const py::array& x, const char* name) {
  if (x.dtype().is(py::dtype::of<double>())) return true;
  if (x.dtype().is(py::dtype::of<float>())) return false;
  fail(std::string(name) + " must be float32 or float64, got " + std::string(py::str(x.dtype())));
}

void check_lengths(const py::array& a, const char* name, int64_t B, int64_t max_len) {
  check<int64_t>(a, name, 1);
  check_dim(a, name, 0, B);
  const int64_t* p = static_cast<const int64_t*>(a.data());
  for (int64_t b = 0; b < B; ++b)
    if (p[b] < 0 || p[b] > max_len)
      fail(std::string(name) + "[" + std::to_string(b) + "] = " + std::to_string(p[b]) + " is outside [0, " +
           std::to_string(max_len) + "]");
}

template <typename T>
void kdtree(py::array x, py::array y, py::array x_len, py::array y_len, int64_t K, py::array idx, py::array dist2) {
  check<T>(x, "x", 3);
  const int64_t B = x.shape(0), N = x.shape(1), D = x.shape(2);
  const bool shared = y.ndim() == 2;
  check<T>(y, "y", shared ? 2 : 3);
  if (!shared) check_dim(y, "y", 0, B);
  check_dim(y, "y", y.ndim() - 1, D);
  const int64_t M = y.shape(y.ndim() - 2);
  if (D < 1 || D > fe_fast::kKdMaxD)
    fail("the kd-tree path needs 1 <= D <= " + std::to_string(fe_fast::kKdMaxD) + ", got D=" + std::to_string(D));
  if (K < 1) fail("K must be >= 1, got " + std::to_string(K));
  check_lengths(x_len, "x_len", B, N);
  check_lengths(y_len, "y_len", B, M);
  check<int64_t>(idx, "idx", 3, true);
  check<T>(dist2, "dist2", 3, true);
  for (auto* a : {&idx, &dist2}) {
    const char* nm = a == &idx ? "idx" : "dist2";
    check_dim(*a, nm, 0, B);
    check_dim(*a, nm, 1, N);
    check_dim(*a, nm, 2, K);
  }
  const T* xp = static_cast<const T*>(x.data());
  const T* yp = static_cast<const T*>(y.data());
  const int64_t* xl = static_cast<const int64_t*>(x_len.data());
  const int64_t* yl = static_cast<const int64_t*>(y_len.data());
  int64_t* ip = static_cast<int64_t*>(idx.mutable_data());
  T* dp = static_cast<T*>(dist2.mutable_data());
  py::gil_scoped_release release;
  fe_fast::knn_topk_kdtree_cpu<T>(xp, yp, B, N, M, D, shared, xl, yl, K, ip, dp);
}

template <typename T>
void scan(py::array dot, py::array ynorm, int64_t j0, py::array cand_d, py::array cand_i) {
  check<T>(dot, "dot", 2);
  const int64_t Q = dot.shape(0), Mb = dot.shape(1);
  check<T>(ynorm, "ynorm", 1);
  check_dim(ynorm, "ynorm", 0, Mb);
  check<T>(cand_d, "cand_d", 2, true);
  check<int64_t>(cand_i, "cand_i", 2, true);
  check_dim(cand_d, "cand_d", 0, Q);
  const int64_t Kc = cand_d.shape(1);
  if (Kc < 1) fail("cand_d must have at least one column");
  check_dim(cand_i, "cand_i", 0, Q);
  check_dim(cand_i, "cand_i", 1, Kc);
  if (j0 < 0) fail("j0 must be >= 0, got " + std::to_string(j0));
  const T* dp = static_cast<const T*>(dot.data());
  const T* np_ = static_cast<const T*>(ynorm.data());
  T* cd = static_cast<T*>(cand_d.mutable_data());
  int64_t* ci = static_cast<int64_t*>(cand_i.mutable_data());
  py::gil_scoped_release release;
  fe_fast::knn_topk_scan_cpu<T>(dp, Q, Mb, np_, j0, Kc, cd, ci);
}

template <typename T>
int64_t rerank(py::array xq, py::array y, py::array cand_i, py::array cand_d, double ynorm_max, int64_t K,
               py::array idx, py::array dist2) {
  check<T>(xq, "xq", 2);
  const int64_t Q = xq.shape(0), D = xq.shape(1);
  check<T>(y, "y", 2);
  check_dim(y, "y", 1, D);
  const int64_t M = y.shape(0);
  check<int64_t>(cand_i, "cand_i", 2);
  check<T>(cand_d, "cand_d", 2);
  check_dim(cand_i, "cand_i", 0, Q);
  const int64_t Kc = cand_i.shape(1);
  check_dim(cand_d, "cand_d", 0, Q);
  check_dim(cand_d, "cand_d", 1, Kc);
  if (K < 1) fail("K must be >= 1, got " + std::to_string(K));
  if (Kc < 1) fail("cand_i must have at least one column");
  if (M < 1) fail("y must hold at least one point");
  if (Kc < M && Kc < K) fail("cand_i has fewer columns (" + std::to_string(Kc) + ") than K=" + std::to_string(K));
  check<int64_t>(idx, "idx", 2, true);
  check<T>(dist2, "dist2", 2, true);
  for (auto* a : {&idx, &dist2}) {
    const char* nm = a == &idx ? "idx" : "dist2";
    check_dim(*a, nm, 0, Q);
    check_dim(*a, nm, 1, K);
  }
  const int64_t* ci = static_cast<const int64_t*>(cand_i.data());
  for (int64_t t = 0; t < Q * Kc; ++t)  // the candidates index y: range-checked before any read
    if (ci[t] < -1 || ci[t] >= M) fail("cand_i holds " + std::to_string(ci[t]) + ", outside [-1, " + std::to_string(M) + ")");
  const T* xp = static_cast<const T*>(xq.data());
  const T* yp = static_cast<const T*>(y.data());
  const T* cd = static_cast<const T*>(cand_d.data());
  int64_t* ip = static_cast<int64_t*>(idx.mutable_data());
  T* dp = static_cast<T*>(dist2.mutable_data());
  py::gil_scoped_release release;
  return fe_fast::knn_topk_rerank_cpu<T>(xp, Q, yp, M, D, ci, cd, Kc, T(ynorm_max), K, ip, dp);
}

template <typename T>
int64_t brute(py::array xq, py::array y, int64_t K, py::array idx, py::array dist2) {
  check<T>(xq, "xq", 2);
  const int64_t Q = xq.shape(0), D = xq.shape(1);
  check<T>(y, "y", 2);
  check_dim(y, "y", 1, D);
  const int64_t M = y.shape(0);
  if (K < 1) fail("K must be >= 1, got " + std::to_string(K));
  if (M < 1) fail("y must hold at least one point");
  if (D < 1) fail("points must have D >= 1");
  check<int64_t>(idx, "idx", 2, true);
  check<T>(dist2, "dist2", 2, true);
  for (auto* a : {&idx, &dist2}) {
    const char* nm = a == &idx ? "idx" : "dist2";
    check_dim(*a, nm, 0, Q);
    check_dim(*a, nm, 1, K);
  }
  const T* xp = static_cast<const T*>(xq.data());
  const T* yp = static_cast<const T*>(y.data());
  int64_t* ip = static_cast<int64_t*>(idx.mutable_data());
  T* dp = static_cast<T*>(dist2.mutable_data());
  py::gil_scoped_release release;
  return fe_fast::knn_topk_brute_cpu<T>(xp, Q, yp, M, D, K, ip, dp);
}

}  // namespace

void bind_knn_topk(py::module_& m) {
  m.attr("knn_topk_kdtree_max_d") = fe_fast::kKdMaxD;
  m.def(
      "knn_topk_kdtree",
      [](py::array x, py::array y, py::array x_len, py::array y_len, int64_t K, py::array idx, py::array dist2) {
        if (is_float64(x, "x"))
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
        if (is_float64(dot, "dot"))
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
        if (is_float64(xq, "xq")) return brute<double>(xq, y, K, idx, dist2);
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
        if (is_float64(xq, "xq")) return rerank<double>(xq, y, cand_i, cand_d, ynorm_max, K, idx, dist2);
        return rerank<float>(xq, y, cand_i, cand_d, ynorm_max, K, idx, dist2);
      },
      py::arg("xq"), py::arg("y"), py::arg("cand_i"), py::arg("cand_d"), py::arg("ynorm_max"), py::arg("K"),
      py::arg("idx"), py::arg("dist2"),
      "Exact re-rank of the scan's candidates (coordinate differences), certified against the rounding of "
      "the matrix-product form; returns the number of queries that fell back to an exact full scan.");
}
