"""The pure core of the sealer service: no Kafka, HTTP, database, clock or randomness."""
