"""Redis plumbing: every key name, the one error boundary, the WATCH retry loop."""
