"""Benchmarks: `make bench` runs them all; each prints its figures, best as a ratio to a reference."""
