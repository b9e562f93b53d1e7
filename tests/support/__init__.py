"""Helpers for the tests: real services, waiting with deadlines, worker processes."""
