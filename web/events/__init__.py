"""The events resource family: /api/events, the realtime stream."""
