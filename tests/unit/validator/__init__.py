"""Validator unit tests."""
