"""Shared timing helper of the benchmarks in tools/ (run them as scripts: this folder is on sys.path)."""

import statistics
import time


def median_seconds(fn, repeats, warmup=3):
    """Median wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
