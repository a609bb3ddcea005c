"""The reliability suite: faults, load, hostile input and secrets (issue 8)."""
