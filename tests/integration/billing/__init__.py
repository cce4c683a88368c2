"""Integration tests of the billing service's adapters."""
