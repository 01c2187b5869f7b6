"""The `tradebus` command line: the embedded stack, the service entry point, operator tools."""
