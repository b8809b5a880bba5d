"""Owner ids and what an owner sees of their records."""
