"""`passgate bench`: the benchmark harness (docs/performance.md#running-the-benchmark)."""
