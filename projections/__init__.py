"""The read side: the job and assignment read models, the followers of the log
that keep them and publish it, and the rebuild.

Where things are:

- the read models, here: `jobs` and `assignments` (a table each, how an event
  changes its rows, their queries; `query`: what the queries share), `store`
  (`DispatchViews`: the tables beside their tracking record, each batch applied
  exactly once), `backends` (SQLite and PostgreSQL, and `views_for(factory)`),
  `batches` (a batch of events as the read models' SQL), `shadow` (the tables a
  rebuild writes, and the switch), and `log` (`EventLog`: all the read side
  needs of the application);
- `following`: reading the log once per process (`reader`, `window`,
  `entries`), a follower of it (`follower`, `backoff`, `status`), and the one
  that keeps the read models (`runner`);
- `realtime`: the published envelope (`envelopes`), the relay to Redis
  (`relay`), and the fan-out to a server's event streams (`hub`, `feeds`);
- `rebuild`: the whole log replayed into shadow tables, then switched in.
"""
