"""The ops worker: a light process (no model, no torch) that delivers webhooks and runs the reconciler."""
