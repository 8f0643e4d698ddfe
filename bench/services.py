"""The processes the HTTP benchmarks start, through `smartscheduler.launch`.

`serve` starts `smartscheduler serve` on a free port (a token for it from
`token`), `command` another `smartscheduler` command (the relay, the read-model
worker), `redis` a private redis-server (the relay writes a fixed stream, so
never a shared one). Each is stopped when the given `ExitStack` closes. Also
the JSON calls the benchmarks make besides the measured load.
"""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import socket
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import smartscheduler.launch as launcher
from application.settings import Settings
from smartscheduler.launch import HOST, Launched, free_port, launch, logged, service_env
from web.auth import mint_token

SECRET = secrets.token_urlsafe(32)
CANCEL = {"reason": "Customer called to cancel", "reasonCode": "CustomerRequest"}


def token(sub: str = "bench") -> str:
    """A Dispatcher's bearer token for the servers started here, valid for a day."""
    return mint_token(Settings(jwt_secret=SECRET), roles=["Dispatcher"], sub=sub,
                      ttl=24 * 3600)


def _settings(settings: dict[str, str]) -> dict[str, str]:
    return {f"SMARTSCHEDULER_{key.upper()}": value for key, value in settings.items()}


def serve(stack: ExitStack, workdir: Path, name: str, database_url: str,
          **settings: str) -> Launched:
    """`smartscheduler serve` (as `make run` starts it, plus `settings`, e.g.
    `redis_url=...`), ready; its log is `<workdir>/<name>.log`."""
    launched = launcher.serve(database_url, SECRET, workdir / f"{name}.log",
                            settings=_settings(settings))
    stack.callback(launched.stop)
    return launched


def command(stack: ExitStack, workdir: Path, args: list[str], database_url: str,
            ready: str, **settings: str) -> Launched:
    """`smartscheduler <args>`, returned once `ready` is in its log."""
    launched = launch(launcher.smartscheduler(*args), workdir / f"{args[0]}.log",
                      env=service_env(database_url, SECRET, _settings(settings)),
                      ready=logged(ready))
    stack.callback(launched.stop)
    return launched


def _pong(launched: Launched) -> bool:
    try:
        with socket.create_connection((HOST, launched.port), timeout=1) as probe:
            probe.sendall(b"PING\r\n")
            return probe.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis(stack: ExitStack, workdir: Path) -> str:
    """A private, throw-away redis-server; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("no redis-server binary on PATH")
    port = free_port()
    launched = launch([binary, "--port", str(port), "--bind", HOST, "--save", "",
                       "--appendonly", "no", "--dir", str(workdir)],
                      workdir / "redis.log", port=port, ready=_pong)
    stack.callback(launched.stop)
    return f"redis://{HOST}:{port}/0"


def call(connection: http.client.HTTPConnection, method: str, path: str,
         body: Any = None, bearer: str = "") -> tuple[int, Any]:
    """One JSON request on a kept-alive connection; the status and the parsed body."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    connection.request(method, path, headers=headers,
                       body=None if body is None else json.dumps(body).encode())
    response = connection.getresponse()
    return response.status, json.loads(response.read() or b"null")


def connect(port: int, timeout: float = 30) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(HOST, port, timeout=timeout)
