"""Integration tests of the replay tables and API authentication on real databases."""
