"""Benchmarks of the service at generated scale; each script prints one JSON object.

See docs/performance.md for what each figure means and how to run them.
"""
