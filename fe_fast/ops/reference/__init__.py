"""Plain-torch reference implementations of the ops, for tests and benchmarks only (slow, simple)."""
