// fe_fast._C: the CPU kernels. Each op family registers itself from its own bind_*.cpp file.
#include <pybind11/pybind11.h>
#include <omp.h>

namespace py = pybind11;

void bind_knn(py::module_& m);  // python/bind_knn.cpp
void bind_knn_topk(py::module_& m);  // python/bind_knn_topk.cpp
void bind_modconv(py::module_& m);  // python/bind_modconv.cpp
void bind_s_grad_reduce(py::module_& m);  // python/bind_s_grad_reduce.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "fe-fast CPU kernels (C++17, OpenMP)";
  m.def("omp_max_threads", []() { return omp_get_max_threads(); },
        "Number of OpenMP threads the kernels use (OMP_NUM_THREADS).");
  bind_knn(m);
  bind_knn_topk(m);
  bind_modconv(m);
  bind_s_grad_reduce(m);
}
