"""The project's common library: event schemas, topic names, settings base, Kafka and DB plumbing."""
