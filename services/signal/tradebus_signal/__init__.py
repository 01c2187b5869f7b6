"""signal service: validates strategy signals and turns them into sized order intents."""
