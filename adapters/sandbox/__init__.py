"""Local stand-ins of the external systems, for tests, benchmarks and demos."""
