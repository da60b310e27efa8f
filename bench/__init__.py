"""The benchmark: the project against raw-Playwright baselines, CPU- and latency-bound, plus
memory and queue modes. Run it with `make bench` or `submissions bench [--full]`;
bench/README.md says how to read the table.
"""
