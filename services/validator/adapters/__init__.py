"""Thin translators between the validator service and Kafka, HTTP and its store."""
