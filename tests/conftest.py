"""Test-wide setup. Triton kernels are tested on the CPU through the interpreter, so switch it on
before anything imports triton (``make test`` sets it too)."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
