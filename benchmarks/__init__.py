"""Benchmarks (`make bench`): speed reported as ratios against a baseline measured in the same
run, never asserted as wall-clock limits. Results and the machine they ran on: RESULTS.md."""
