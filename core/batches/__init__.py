"""Batches: many prompts under one handle (record, store, submission, progress, envelope and JSON stream)."""
