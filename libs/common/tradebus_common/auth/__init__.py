"""NATS auth for tradebus: identities, permissions, JWTs, creds files, TLS (issue #9)."""
