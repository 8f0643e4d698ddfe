"""Webhooks: endpoints Admins register, and the delivery of every published event
to them, signed per Standard Webhooks, at least once.

`tables` and `store` (per backend in `backends`) hold the endpoints and the
deliveries; `follower` makes the deliveries from the log, exactly once, with its
tracking position; `sender` sends and retries them (`transport` makes one POST,
`addresses` says where one may go, `secrets` keeps the signing secrets sealed).
"""
