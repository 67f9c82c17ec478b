"""The outside world: Asterisk (ARI, AMI), Redis, webhooks, Prometheus metrics."""
