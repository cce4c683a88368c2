"""Thin translators between the billing service and Kafka, HTTP and its store."""
