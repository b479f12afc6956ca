"""Thin runtime: load an artifact, run it, verify and bench it. Never imports torch."""
