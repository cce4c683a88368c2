"""The pure core of the identity service: no Kafka, HTTP, database, clock or randomness."""
