"""Helpers and fixtures shared by several test modules (no test imports another test module)."""
