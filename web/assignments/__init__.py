"""The assignments resource family: /api/assignments."""
