"""Benchmarks (``./expo bench``): figures printed and written as JSON, never asserted in tests."""
