"""Which knn backends can run here, with the reason for any that cannot."""
import importlib.util
import os

import torch


def available():
    out = [("cpu", None)]
    if os.environ.get("TRITON_INTERPRET") != "1":
        out.append(("triton", "TRITON_INTERPRET=1 is not set"))
    elif importlib.util.find_spec("triton") is None:
        out.append(("triton", "triton is not installed"))
    else:
        out.append(("triton", None))
    if torch.cuda.is_available():
        out.append(("cuda", None))
    return out
