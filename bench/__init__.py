"""Benchmarks, each runnable as `python -m bench.<name>`; they print figures, they assert nothing."""
