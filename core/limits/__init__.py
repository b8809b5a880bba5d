"""Bounds shared by every API process: per-owner queue and slot limits, file quotas, long requests, Redis memory."""
