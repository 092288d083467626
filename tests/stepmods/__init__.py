"""Step modules the tests run in real executors."""
