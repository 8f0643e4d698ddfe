"""Events as they are published: the envelope, the relay to Redis, and the hub.

`envelopes`: the published envelope of an event (what the relay writes to Redis,
the hub hands out and an event stream sends) and who receives it. `relay`: every
committed event to Redis, at least once. `hub`: the fan-out to the event streams
of one server process, fed (`feeds`) by the event store or by Redis.
"""
