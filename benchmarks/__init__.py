"""Speed measurements that print figures (never timed tests): ``python -m benchmarks.bench_dataflow``, ..."""
