"""Thin translators between the sealer service and Kafka, HTTP and its store."""
