"""The embedded stack for `tradebus up` and the tests: real nats-server and PostgreSQL."""
