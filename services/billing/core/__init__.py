"""The pure core of the billing service: no Kafka, HTTP, database, clock or randomness."""
