"""Thin translators between the records service and Kafka, HTTP and its store."""
