"""The benchmarks (`make bench`, `python -m benchmarks`)."""
