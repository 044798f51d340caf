"""Speed and memory benchmarks: ``python -m benchmarks NAME [args]`` or
``python -m benchmarks.NAME [args]``. Not run by the test suite."""
