"""Benchmarks of audiocap's embedding extraction (`python -m bench.run_all`, `make bench`)."""
