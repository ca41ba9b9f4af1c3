"""Benchmarks run against real components (`make bench`); each module is runnable with `python -m`."""
