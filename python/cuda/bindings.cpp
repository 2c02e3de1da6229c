// fe_fast._C_cuda: the CUDA kernels. Launches take DLPack capsules of the tensors and the caller's
// stream (torch.cuda.current_stream().cuda_stream), so the build needs no torch headers.
#include <pybind11/pybind11.h>
#include <cuda_runtime.h>

namespace py = pybind11;

void bind_knn_cuda(py::module_& m);  // python/cuda/bind_knn_cuda.cpp

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "fe-fast CUDA kernels";
  m.def("device_count", []() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
  }, "Number of CUDA devices the CUDA runtime sees (0 when none or no driver).");
  bind_knn_cuda(m);
}
