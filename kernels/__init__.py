"""Triton GPU kernels, installed as ``fe_fast.kernels``. Imported lazily by ``fe_fast.ops``;
every kernel here also runs on the CPU under ``TRITON_INTERPRET=1`` (that is how CI tests them)."""
