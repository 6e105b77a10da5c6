"""Benchmark scripts: each prints markdown tables; `python -m bench.run_all` writes docs/BENCHMARKS.md. Not tests."""
