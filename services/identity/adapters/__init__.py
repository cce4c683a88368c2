"""Thin translators between the identity service and Kafka, HTTP and its store."""
