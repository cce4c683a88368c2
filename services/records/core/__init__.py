"""The pure core of the records service: no Kafka, HTTP, database, clock or randomness."""
