"""fe-fast ops: validation, device dispatch and autograd over the compiled kernels.

This is the only layer that talks to ``fe_fast._C``, ``fe_fast._C_cuda`` and ``fe_fast.kernels``.
"""
from fe_fast.ops.chamfer import chamfer, local_chamfer, projected_chamfer
from fe_fast.ops.chamfer_distance import chamfer_distance
from fe_fast.ops.knn import KNN, KNNSelect, knn, knn_select
from fe_fast.ops.knn_topk import KNNTopK, knn_topk
from fe_fast.ops.modulated_conv import modulated_conv2d
from fe_fast.ops.s_grad_reduce import s_grad_reduce

__all__ = ["knn", "knn_select", "KNN", "KNNSelect", "knn_topk", "KNNTopK", "chamfer", "local_chamfer",
           "projected_chamfer", "chamfer_distance",
           "modulated_conv2d", "s_grad_reduce"]
