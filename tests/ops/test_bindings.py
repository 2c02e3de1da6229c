"""The raw C++ bindings of ``fe_fast._C`` check their arguments (python/array_checks.h): a call with
a wrong rank, dtype, size, layout, a read-only output or an output sharing memory with another
argument raises ValueError naming the argument and never reaches the kernel. Each bad call is also
replayed in a child process, so a check that let a bad pointer through shows up as a crash
(non-zero exit) rather than as luck."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fe_fast import _ext

if _ext.disabled():
    pytest.skip("FE_FAST_DISABLE_EXT=1 hides fe_fast._C: the raw binding is tested in the other run",
                allow_module_level=True)
_C = pytest.importorskip("fe_fast._C", reason="fe_fast._C is not built: the bindings cannot be called")

f32, f64, i64 = np.float32, np.float64, np.int64


def z(*shape, dtype=f32):
    return np.zeros(shape, dtype=dtype)


def ro(a):
    a.setflags(write=False)
    return a


def knn_args(**over):
    B, N, M = 2, 5, 4
    a = dict(x=z(B, N, 3), y=z(B, M, 3), x_len=np.full(B, N, i64), y_len=np.full(B, M, i64), k=None,
             idx=z(B, N, dtype=i64), dist2=z(B, N), sel=None)
    a.update(over)
    return a


def sgr_args(**over):
    B, C = 3, 6
    a = dict(g=z(B, C), mask=np.ones(B, bool), offsets=np.array([0, 2, 6], i64), k=2, mean=z(C),
             mean_abs=z(C), layer=z(2), topk_idx=z(2, 2, dtype=i64), topk_val=z(2, 2))
    a.update(over)
    return a


B, I, O, H, W = 2, 3, 4, 5, 6


def epi_args(**over):
    a = dict(y=z(B, O, H, W), d=z(B, O), noise=z(1, 1, H, W), bias=z(O), out=z(B, O, H, W),
             lrelu=True, slope=0.2, gain=1.4)
    a.update(over)
    return a


def epi_bwd_args(**over):
    a = dict(grad_out=z(B, O, H, W), y=z(B, O, H, W), out=z(B, O, H, W), d=z(B, O), grad_y=z(B, O, H, W),
             grad_d=z(B, O), grad_noise=z(B, 1, H, W), grad_bias=z(O), lrelu=True, slope=0.2, gain=1.4)
    a.update(over)
    return a


def demod_args(**over):
    a = dict(weight=z(O, I, 3, 3), s=z(B, I), wsq=z(O, I), d=z(B, O), eps=1e-8)
    a.update(over)
    return a


def mod_args(**over):
    a = dict(x=z(B, I, H, W), s=z(B, I), xs=z(B, I, H, W))
    a.update(over)
    return a


def mod_bwd_args(**over):
    a = dict(grad_xs=z(B, I, H, W), x=z(B, I, H, W), s=z(B, I), grad_x=z(B, I, H, W), grad_s=z(B, I))
    a.update(over)
    return a


def nhwc_args(**over):
    a = dict(x=z(B, I, H, W), s=z(B, I), xs=z(B, H, W, I))
    a.update(over)
    return a


def epi_nhwc_args(**over):
    a = dict(y=z(B, H, W, O), d=z(B, O), noise=z(B, 1, H, W), bias=z(O), out=z(B, O, H, W),
             y_nchw=z(B, O, H, W), lrelu=True, slope=0.2, gain=1.4)
    a.update(over)
    return a


_ALIAS = np.zeros(256, np.uint8)  # bytes that several arguments view (an output overlapping another array)

# (binding, argument builder, overrides, expected message fragment)
BAD = {
    # outputs sharing memory (views of _ALIAS): the kernel would read what it is writing
    "knn_dist2_aliases_x": ("knn", knn_args, dict(x=_ALIAS[:120].view(f32).reshape(2, 5, 3),
                                                  dist2=_ALIAS[80:120].view(f32).reshape(2, 5)),
                            "output dist2 shares memory with input x"),
    "knn_idx_aliases_dist2": ("knn", knn_args, dict(idx=_ALIAS[:80].view(i64).reshape(2, 5),
                                                    dist2=_ALIAS[40:80].view(f32).reshape(2, 5)),
                              "outputs idx and dist2 share memory"),
    "sgr_mean_aliases_g": ("s_grad_reduce", sgr_args, dict(g=_ALIAS[:72].view(f32).reshape(3, 6),
                                                           mean=_ALIAS[48:72].view(f32)),
                           "output mean shares memory with input g"),
    # knn
    "knn_x_rank": ("knn", knn_args, dict(x=z(5, 3)), "x must have shape"),
    "knn_x_int32": ("knn", knn_args, dict(x=z(2, 5, 3, dtype=np.int32)), "float32 or float64"),
    "knn_x_float16": ("knn", knn_args, dict(x=z(2, 5, 3, dtype=np.float16)), "float32 or float64"),
    "knn_D4": ("knn", knn_args, dict(x=z(2, 5, 4), y=z(2, 4, 4)), "D must be 2 or 3"),
    "knn_y_dtype": ("knn", knn_args, dict(y=z(2, 4, 3, dtype=f64)), "y must be float32"),
    "knn_y_D": ("knn", knn_args, dict(y=z(2, 4, 2)), "y must have shape"),
    "knn_y_batch": ("knn", knn_args, dict(y=z(3, 4, 3)), "y must have shape"),
    "knn_y_rank": ("knn", knn_args, dict(y=z(4)), "y must have shape"),
    "knn_xlen_size": ("knn", knn_args, dict(x_len=np.full(3, 5, i64)), "x_len must have shape"),
    "knn_xlen_int32": ("knn", knn_args, dict(x_len=np.full(2, 5, np.int32)), "x_len must be int64"),
    "knn_xlen_range": ("knn", knn_args, dict(x_len=np.array([5, 6], i64)), r"x_len\[1\] = 6"),
    "knn_xlen_negative": ("knn", knn_args, dict(x_len=np.array([-1, 5], i64)), r"x_len\[0\]"),
    "knn_ylen_zero": ("knn", knn_args, dict(y_len=np.array([4, 0], i64)), r"y_len\[1\] = 0"),
    "knn_ylen_big": ("knn", knn_args, dict(y_len=np.array([1000, 4], i64)), r"y_len\[0\] = 1000"),
    "knn_x_noncontig": ("knn", knn_args, dict(x=z(2, 3, 5).transpose(0, 2, 1)), "C-contiguous"),
    "knn_y_strided": ("knn", knn_args, dict(y=z(2, 8, 3)[:, ::2]), "C-contiguous"),
    "knn_idx_readonly": ("knn", knn_args, dict(idx=ro(z(2, 5, dtype=i64))), "writable"),
    "knn_dist2_readonly": ("knn", knn_args, dict(dist2=ro(z(2, 5))), "writable"),
    "knn_idx_int32": ("knn", knn_args, dict(idx=z(2, 5, dtype=np.int32)), "idx must be int64"),
    "knn_dist2_size": ("knn", knn_args, dict(dist2=z(2, 4)), "dist2 must have shape"),
    "knn_k_without_sel": ("knn", knn_args, dict(k=np.ones(2, i64)), "together"),
    "knn_sel_shape": ("knn", knn_args, dict(k=np.ones(2, i64), sel=z(2, 4, dtype=bool)), "sel must have shape"),
    "knn_sel_readonly": ("knn", knn_args, dict(k=np.ones(2, i64), sel=ro(z(2, 5, dtype=bool))), "writable"),
    "knn_k_negative": ("knn", knn_args, dict(k=np.array([1, -3], i64), sel=z(2, 5, dtype=bool)), "negative"),
    "knn_x_address": ("knn", knn_args, dict(x=12345), "numpy array"),
    "knn_x_list": ("knn", knn_args, dict(x=[[[0.0, 0.0, 0.0]]]), "numpy array"),
    # s_grad_reduce
    "sgr_g_rank": ("s_grad_reduce", sgr_args, dict(g=z(6)), "g must have shape"),
    "sgr_g_int": ("s_grad_reduce", sgr_args, dict(g=z(3, 6, dtype=i64)), "float32 or float64"),
    "sgr_mask_size": ("s_grad_reduce", sgr_args, dict(mask=np.ones(4, bool)), "mask must have shape"),
    "sgr_mask_float": ("s_grad_reduce", sgr_args, dict(mask=z(3)), "mask must be bool"),
    "sgr_mask_empty": ("s_grad_reduce", sgr_args, dict(mask=np.zeros(3, bool)), "no sample"),
    "sgr_offsets_end": ("s_grad_reduce", sgr_args, dict(offsets=np.array([0, 2, 9], i64)), "end at C=6"),
    "sgr_offsets_short": ("s_grad_reduce", sgr_args, dict(offsets=np.array([0], i64)), "offsets must have shape"),
    "sgr_offsets_int32": ("s_grad_reduce", sgr_args, dict(offsets=np.array([0, 2, 6], np.int32)), "int64"),
    "sgr_layer_below_k": ("s_grad_reduce", sgr_args, dict(offsets=np.array([0, 1, 6], i64)), "fewer than k"),
    "sgr_decreasing": ("s_grad_reduce", sgr_args, dict(offsets=np.array([0, 7, 6], i64)), "layer 1"),
    "sgr_k_zero": ("s_grad_reduce", sgr_args, dict(k=0), "k must be >= 1"),
    "sgr_mean_dtype": ("s_grad_reduce", sgr_args, dict(mean=z(6, dtype=f64)), "mean must be float32"),
    "sgr_topk_shape": ("s_grad_reduce", sgr_args, dict(topk_idx=z(2, 3, dtype=i64)), "topk_idx must have shape"),
    "sgr_topk_readonly": ("s_grad_reduce", sgr_args, dict(topk_val=ro(z(2, 2))), "writable"),
    "sgr_g_noncontig": ("s_grad_reduce", sgr_args, dict(g=z(6, 3).T), "C-contiguous"),
    # modulated-conv kernels
    "epi_y_rank": ("modconv_epilogue_fwd", epi_args, dict(y=z(B, O, H * W)), "4-D"),
    "epi_d_shape": ("modconv_epilogue_fwd", epi_args, dict(d=z(O, B)), "d must have shape"),
    "epi_noise_batch": ("modconv_epilogue_fwd", epi_args, dict(noise=z(3, 1, H, W)), "noise must have shape"),
    "epi_noise_size": ("modconv_epilogue_fwd", epi_args, dict(noise=z(1, 1, H, W + 1)), "noise must have shape"),
    "epi_bias_dtype": ("modconv_epilogue_fwd", epi_args, dict(bias=z(O, dtype=f64)), "bias must be float32"),
    "epi_out_readonly": ("modconv_epilogue_fwd", epi_args, dict(out=ro(z(B, O, H, W))), "writable"),
    "epi_out_noncontig": ("modconv_epilogue_fwd", epi_args, dict(out=z(B, O, W, H).transpose(0, 1, 3, 2)),
                          "C-contiguous"),
    "epi_bwd_grad_y_shape": ("modconv_epilogue_bwd", epi_bwd_args, dict(grad_y=z(B, O, H, W - 1)), "grad_y"),
    "epi_bwd_out_dtype": ("modconv_epilogue_bwd", epi_bwd_args, dict(out=z(B, O, H, W, dtype=f64)), "out must be"),
    "epi_bwd_grad_bias_ro": ("modconv_epilogue_bwd", epi_bwd_args, dict(grad_bias=ro(z(O))), "writable"),
    "demod_weight_rank": ("modconv_demod", demod_args, dict(weight=z(O, I, 9)), "4-D"),
    "demod_s_shape": ("modconv_demod", demod_args, dict(s=z(B, I + 1)), "s must have shape"),
    "demod_d_shape": ("modconv_demod", demod_args, dict(d=z(B + 1, O)), "d must have shape"),
    "demod_wsq_ro": ("modconv_demod", demod_args, dict(wsq=ro(z(O, I))), "writable"),
    "mod_s_shape": ("modconv_modulate_fwd", mod_args, dict(s=z(B, I, 1)), "s must have shape"),
    "mod_xs_dtype": ("modconv_modulate_fwd", mod_args, dict(xs=z(B, I, H, W, dtype=f64)), "xs must be float32"),
    "mod_bwd_grad_s_ro": ("modconv_modulate_bwd", mod_bwd_args, dict(grad_s=ro(z(B, I))), "writable"),
    "mod_bwd_x_shape": ("modconv_modulate_bwd", mod_bwd_args, dict(x=z(B, I, H + 1, W)), "x must have shape"),
    "nhwc_xs_nchw": ("modconv_modulate_nhwc", nhwc_args, dict(xs=z(B, I, H, W)), "xs must have shape"),
    "epi_nhwc_out_nhwc": ("modconv_epilogue_fwd_nhwc", epi_nhwc_args, dict(out=z(B, H, W, O)), "out must have shape"),
    "epi_nhwc_ynchw_ro": ("modconv_epilogue_fwd_nhwc", epi_nhwc_args, dict(y_nchw=ro(z(B, O, H, W))), "writable"),
}

GOOD = {
    "knn": knn_args(k=np.array([2, 9], i64), sel=z(2, 5, dtype=bool)),
    "s_grad_reduce": sgr_args(),
    "modconv_epilogue_fwd": epi_args(d=None, noise=None, bias=None),
    "modconv_epilogue_bwd": epi_bwd_args(d=None, grad_y=None, grad_noise=None),
    "modconv_demod": demod_args(),
    "modconv_modulate_fwd": mod_args(),
    "modconv_modulate_bwd": mod_bwd_args(grad_x=None),
    "modconv_modulate_nhwc": nhwc_args(),
    "modconv_epilogue_fwd_nhwc": epi_nhwc_args(y_nchw=None),
}


def call_bad(name):
    fn, build, over, _ = BAD[name]
    return getattr(_C, fn)(**build(**over))


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_call_raises(name):
    with pytest.raises(ValueError, match=BAD[name][3]):
        call_bad(name)


@pytest.mark.parametrize("fn", sorted(GOOD))
def test_good_call_passes_the_checks(fn):
    """The same builders with valid arguments run the kernel (the checks are not over-strict)."""
    getattr(_C, fn)(**GOOD[fn])


def test_knn_good_call_result():
    a = knn_args()
    a["y"][:, 2] = 1.0  # every reference but index 2 sits at the origin, like the queries
    a["x"][...] = 1.0
    _C.knn(**a)
    assert (a["idx"] == 2).all() and (a["dist2"] == 0).all()


def test_bad_calls_do_not_crash_a_fresh_process():
    """All bad calls in a child process: each must raise, and the process must exit cleanly."""
    code = (
        "import runpy, sys\n"
        f"m = runpy.run_path({str(Path(__file__))!r})\n"
        "for name in sorted(m['BAD']):\n"
        "    try:\n"
        "        m['call_bad'](name)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    sys.exit('no exception: ' + name)\n"
        "print('ok', len(m['BAD']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert r.stdout.strip() == f"ok {len(BAD)}"
