"""Webhooks: Standard Webhooks delivery records and signatures, the due queue, which callback URLs may be called."""
