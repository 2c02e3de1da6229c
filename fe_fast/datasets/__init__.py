"""Datasets for fe-fast. Each loader lives in its own module of this package (for example
``fe_fast.datasets.toyfaces``, the procedural face world) and is imported from there; this file
stays import-free so that importing one loader never pulls in the others."""
