"""Benchmarks of monitor against references in the same run; `python -m bench --help`."""
