"""``otel-rollout view``: a rollout as one HTML page; the facts it shares with ``show``."""
