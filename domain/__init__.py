"""The dispatch domain: the Job aggregate, its events, values and errors."""
