"""Training and evaluation: checkpoints (atomic, safe to load)."""
