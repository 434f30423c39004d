"""Helpers for the test suite that are too long for conftest.py."""
