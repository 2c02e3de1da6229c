"""Build fe-fast: CMake compiles ``fe_fast._C`` (C++17 + OpenMP) and, where nvcc is found,
``fe_fast._C_cuda``. Neither needs torch at build time: the bindings take numpy arrays (CPU) and DLPack
capsules (CUDA).

Environment:
  FE_FAST_CUDA=0|1         force the CUDA module off / on (default: on when nvcc is found)
  FE_FAST_CUDA_ARCHS="80;90"  CUDA architectures (default sm_80 and sm_90)
  FE_FAST_NATIVE=0         do not compile with -march=native (for wheels built to be shipped)
  FE_FAST_BUILD_TYPE=Release|Debug
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).parent.resolve()


def _cuda_enabled():
    flag = os.environ.get("FE_FAST_CUDA")
    if flag is not None:
        return flag not in ("0", "", "off", "OFF", "false")
    return shutil.which("nvcc") is not None or Path("/usr/local/cuda/bin/nvcc").exists()


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """One CMake configure + build produces every module into the extension directory."""

    _built = False

    def build_extension(self, ext):
        if CMakeBuild._built:
            return
        if shutil.which("cmake") is None:
            raise RuntimeError("fe-fast needs cmake >= 3.18 on PATH to build its C++ kernels")
        import pybind11

        extdir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_temp = Path(self.build_temp).resolve() / "cmake"
        build_temp.mkdir(parents=True, exist_ok=True)
        cuda = _cuda_enabled()
        args = [
            f"-DCMAKE_BUILD_TYPE={os.environ.get('FE_FAST_BUILD_TYPE', 'Release')}",
            f"-DFE_FAST_OUTPUT_DIR={extdir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DFE_FAST_CUDA={'ON' if cuda else 'OFF'}",
            f"-DFE_FAST_NATIVE={'OFF' if os.environ.get('FE_FAST_NATIVE') == '0' else 'ON'}",
        ]
        if cuda:
            archs = os.environ.get("FE_FAST_CUDA_ARCHS", "80;90")
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
            nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
            args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
        subprocess.check_call(["cmake", str(ROOT), *args], cwd=build_temp)
        jobs = str(os.cpu_count() or 2)
        subprocess.check_call(["cmake", "--build", ".", "--parallel", jobs], cwd=build_temp)
        CMakeBuild._built = True


ext_modules = [CMakeExtension("fe_fast._C")]
if _cuda_enabled():
    ext_modules.append(CMakeExtension("fe_fast._C_cuda"))

packages = find_packages(include=["fe_fast", "fe_fast.*"]) + ["fe_fast.kernels"]

setup(
    name="fe-fast",
    version="0.1.0",
    description="Compiled kernels and methods for face editing: HOUV registration, DERC clustering, "
    "StyleGAN2 and S-space channel editing",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=packages,
    package_dir={"fe_fast.kernels": "kernels"},
    package_data={"fe_fast": ["data/**/*"]},
    include_package_data=True,
    ext_modules=ext_modules,
    cmdclass={"build_ext": CMakeBuild},
    install_requires=[
        "torch>=2.1",
        "numpy>=1.23",
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "tqdm>=4.60",
        "pillow>=10",
        "matplotlib>=3.6",
        "safetensors>=0.4",
    ],
    extras_require={
        "registration": ["open3d>=0.17"],
        "clustering": ["openTSNE>=1.0", "umap-learn>=0.5"],
        "gpu": ["triton>=3.0"],
        "all": ["open3d>=0.17", "openTSNE>=1.0", "umap-learn>=0.5", "triton>=3.0"],
    },
    entry_points={"console_scripts": ["fe-fast=fe_fast.cli:main"]},
    zip_safe=False,
)
