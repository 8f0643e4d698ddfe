"""The `smartscheduler` command line: its parser, and one handler per command.

`main` parses the arguments and calls the command's handler with the settings
from the environment. `serve` starts the HTTP server (`smartscheduler.server`);
`projections run` and `relay` follow the log in this process until stopped
(`smartscheduler.following`); `projections rebuild` and `status`, `history` and
`token` do their one thing and exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from uuid import UUID

from application.errors import JobNotFound
from application.settings import Settings, SettingsError
from smartscheduler.bootstrap import build_services
from smartscheduler.following import run_followers
from smartscheduler.observability import configure_logging

log = logging.getLogger("smartscheduler")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:  # before anything starts: see application.settings
        print(f"smartscheduler: refusing to start: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    return int(args.handler(args, settings) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartscheduler",
        description="Field-service dispatch: serve the API, run and rebuild the read "
                    "models, read a job's audit trail, mint development tokens.")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="serve the HTTP API under gunicorn")
    serve.add_argument("--host", default=None, help="default: $HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    serve.add_argument("--workers", type=int, default=None,
                       help="HTTP worker processes (default: the number of cores, at least "
                            "2); on SQLite the read models and the relay run in one more")
    serve.add_argument("--threads", type=int, default=None,
                       help="threads per worker (default 16)")
    serve.set_defaults(handler=_serve)

    projections = commands.add_parser("projections", help="the read models")
    sub = projections.add_subparsers(title="actions")
    rebuild = sub.add_parser("rebuild", help="drop the read models and replay the log")
    rebuild.add_argument("--batch-size", type=int, default=10_000,
                         help="events per transaction (default: %(default)s)")
    rebuild.add_argument("--no-progress", action="store_true", help="no progress bar")
    rebuild.set_defaults(handler=_rebuild)
    run = sub.add_parser("run", help="follow the log and keep the read models current")
    run.set_defaults(handler=_run)
    status = sub.add_parser(
        "status", help="each follower's position against the log, and its failure if any "
                       "(exit 1 when one is failing)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    relay = commands.add_parser(
        "relay", help="publish every event to Redis (stream and pub/sub), as a worker")
    relay.set_defaults(handler=_relay)
    relay_actions = relay.add_subparsers(title="actions")
    reset_stream = relay_actions.add_parser(
        "reset-stream", help="move the Redis stream aside (renamed, kept) and publish "
                             "again from this store's first event; after a restore "
                             "(deployment.md, \"Restoring a store\")")
    reset_stream.set_defaults(handler=_reset_stream)

    webhooks = commands.add_parser("webhooks", help="webhook delivery")
    webhooks_sub = webhooks.add_subparsers(title="actions")
    webhooks_run = webhooks_sub.add_parser(
        "run", help="follow the log and deliver every event to the registered webhooks")
    webhooks_run.set_defaults(handler=_webhooks)

    history = commands.add_parser("history", help="print a job's audit trail")
    history.add_argument("job_id", metavar="JOB_ID")
    history.add_argument("--json", action="store_true", help="print JSON")
    history.set_defaults(handler=_history)

    token = commands.add_parser("token", help="print a signed token for local use")
    token.add_argument("--role", action="append", required=True,
                       choices=["Admin", "Dispatcher", "Contractor"])
    token.add_argument("--sub", default=None, help="subject (default: a fixed id per role)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.set_defaults(handler=_token)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from smartscheduler.server import serve

    return serve(settings, host=args.host, port=args.port, workers=args.workers,
                 threads=args.threads)


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from projections.rebuild import rebuild

    services = build_services(settings, run_projections=False)
    try:
        with tqdm(total=services.app.head_position(), unit="event", unit_scale=True,
                  disable=args.no_progress, desc="rebuild") as bar:
            def progress(done: int, head: int) -> None:
                bar.total = head
                bar.update(done - bar.n)

            result = rebuild(services.app, services.views, batch_size=args.batch_size,
                             progress=progress)
        print(f"Rebuilt the read models from {result.events:,} events in "
              f"{result.seconds:.2f}s ({result.rate:,.0f} events/s); "
              f"{services.views.count_jobs():,} jobs.")
    finally:
        services.close()
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    return run_followers(settings, views=True, relay=False)


def _redis_url(settings: Settings, why: str) -> str | None:
    """Redis's URL, for a command that needs it; None, having said so, when unset."""
    if not settings.redis_url:
        print(f"error: set SMARTSCHEDULER_REDIS_URL; {why}.", file=sys.stderr)
    return settings.redis_url or None


def _relay(args: argparse.Namespace, settings: Settings) -> int:
    if _redis_url(settings, "the relay publishes to Redis") is None:
        return 2
    return run_followers(settings, views=False, relay=True)


def _reset_stream(args: argparse.Namespace, settings: Settings) -> int:
    """Give the store a new, empty stream (projections.realtime.reset)."""
    from application.persistence import storage_lock
    from projections.realtime.reset import reset_stream
    from smartscheduler.bootstrap import build_dispatch, redis_client

    url = _redis_url(settings, "the stream is in Redis")
    if url is None:
        return 2
    app = build_dispatch(settings)
    client = redis_client(url)
    try:
        with storage_lock(settings.database_url):
            moved = reset_stream(app, client)
    finally:
        client.close()
        app.close()
    print(moved.describe())
    return 0


def _webhooks(args: argparse.Namespace, settings: Settings) -> int:
    return run_followers(settings, views=False, relay=False, webhooks=True)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    """The followers against the head of the log; exit 1 when one is failing."""
    services = build_services(settings, run_projections=False, run_relay=False)
    try:
        head = services.app.head_position()
        followers = services.followers(head)
        rebuilding = services.views.shadow().position()
    finally:
        services.close()
    if args.json:
        print(json.dumps({"head": head, "followers": followers}, indent=2))
    else:
        for follower in followers:
            label = follower["name"].replace("_", " ")
            print(f"{label}: position {follower['position']:,} of {head:,} "
                  f"(lag {follower['lag']:,}), {follower['status']}")
            if follower["lastError"]:
                failing = follower.get("failingEvent")
                if failing:
                    print(f"    cannot apply event {failing['position']} "
                          f"({failing['type']}) since {follower['failingSince']}, "
                          f"{follower['attempts']} attempts")
                print(f"    error: {follower['lastError']}")
        if rebuilding:
            print(f"rebuild: position {rebuilding:,} of {head:,} (in progress)")
    return 1 if any(f["status"] != "ok" for f in followers) else 0


def _history(args: argparse.Namespace, settings: Settings) -> int:
    try:
        job_id = UUID(args.job_id)
    except ValueError:
        print(f"error: {args.job_id!r} is not a job id (a UUID)", file=sys.stderr)
        return 2
    services = build_services(settings, run_projections=False)
    try:
        records = services.app.history(job_id)
    except JobNotFound:
        print(f"error: no job {job_id}", file=sys.stderr)
        return 1
    finally:
        services.close()
    if args.json:
        print(json.dumps({"jobId": str(job_id), "events": records}, indent=2))
        return 0
    for record in records:
        actor = record["actor"] or {}
        # Who and which request come from the caller: shown escaped, like the data,
        # so that no control character reaches the terminal.
        print(f"v{record['version']:<4} {record['occurredAt']}  {record['type']:<20} "
              f"by {json.dumps(actor.get('sub'))} {json.dumps(actor.get('roles'))}  "
              f"request {json.dumps(record['requestId'])}")
        print(f"      {json.dumps(record['data'], sort_keys=True)}")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from web.auth import mint_token

    if settings.uses_development_secret:
        print("warning: SMARTSCHEDULER_JWT_SECRET is not set; signing with the "
              "development secret.", file=sys.stderr)
    print(mint_token(settings, roles=args.role, sub=args.sub, ttl=args.ttl))
    return 0
