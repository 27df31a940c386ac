"""The benchmark suite: `make bench` runs bench/run.py, which writes bench/RESULTS.md."""
