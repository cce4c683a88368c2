"""Unit tests of shared.auth and the API authentication dependency."""
