"""alerting: routes alerts by severity to sinks. The foundation has the log sink."""
