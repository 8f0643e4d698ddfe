"""The jobs resource family: /api/jobs and its commands."""
