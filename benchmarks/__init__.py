"""Reproducible latency and quality measurements; results are written to files beside them."""
