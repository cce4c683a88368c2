"""The pure core of the validator service: no Kafka, HTTP, database, clock or randomness."""
