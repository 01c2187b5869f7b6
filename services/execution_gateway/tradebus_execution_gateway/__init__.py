"""execution-gateway: sends approved orders to a venue with idempotent client order ids."""
