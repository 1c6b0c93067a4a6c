"""Benchmarks and the soak: each starts what it measures on this machine, prints a summary next to
the targets, and writes bench/results/<name>.json; bench/report.py renders docs/benchmarks.md.

Run with `make bench` (everything, a few minutes) and `make soak`; every duration is an
environment variable (BENCH_SECONDS, SOAK_SECONDS, ...), see bench/common.py.
"""
