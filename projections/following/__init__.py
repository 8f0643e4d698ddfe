"""Following the event store's log: one reader per process, shared by its followers.

`reader` (read its docstring first) with its `window` of recent `entries`, each
decoded once; `follower`, the base of every follower (the read models'
`runner`, the relay, the realtime hub's store feed), with its `backoff` and the
failures it records (`status`).
"""
