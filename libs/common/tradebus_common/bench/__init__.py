"""`tradebus bench`: the pipeline's numbers next to raw-JetStream baselines from the same run."""
