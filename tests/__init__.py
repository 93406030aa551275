"""The test suite: tests/core mirrors cxr_core's subpackages, tests/app the app,
tests/e2e the real browser."""
