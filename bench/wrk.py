"""wrk, the HTTP load generator, driven by a Lua script: plain GETs, or POSTs of a
JSON body with a bearer token, to /api/jobs (creates) or, given job ids, to
/api/jobs/{id}/cancel, each id once across wrk's threads. The script prints
the count, the duration, the failures and p50/p99 latency in one line.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from smartscheduler.launch import HOST

SECONDS = 5

SCRIPT = r"""
local counter = 1
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  ids = {}
  local file = os.getenv("BENCH_IDS")
  if file and file ~= "" then
    for line in io.lines(file) do ids[#ids + 1] = line end
  end
  i = tid
  step = tonumber(os.getenv("BENCH_THREADS"))
  wrk.method = "POST"
  wrk.body = os.getenv("BENCH_BODY")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
end
function request()
  if #ids == 0 then return wrk.format(nil, "/api/jobs") end
  local id = ids[((i - 1) % #ids) + 1]
  i = i + step
  return wrk.format(nil, "/api/jobs/" .. id .. "/cancel")
end
function done(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: requests per second, latency percentiles (ms), failures."""

    rate: float
    p50: float
    p99: float
    failed: int


def wrk(port: int, path: str, connections: int, *, workdir: Path, token: str = "",
        ids: list[str] | None = None, body: str = "", seconds: int = SECONDS) -> Load:
    """`seconds` of load on `connections` connections (the script's when `token`)."""
    threads = min(2, connections)
    script = workdir / "bench.lua"
    script.write_text(SCRIPT)
    ids_file = ""
    if ids is not None:
        ids_path = workdir / "ids.txt"
        ids_path.write_text("\n".join(ids) + "\n")
        ids_file = str(ids_path)
    env = {**os.environ, "BENCH_IDS": ids_file, "BENCH_THREADS": str(threads),
           "BENCH_TOKEN": token, "BENCH_BODY": body}
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if token:
        command += ["-s", str(script)]
    out = subprocess.run([*command, f"http://{HOST}:{port}{path}"], env=env,
                         capture_output=True, text=True, timeout=seconds + 60, check=True)
    if not token:  # plain wrk: its summary's rate
        line = next(x for x in out.stdout.splitlines() if "Requests/sec" in x)
        return Load(float(line.split()[-1]), 0.0, 0.0, 0)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH "))
    requests, micros, status_errors, socket_errors, p50, p99 = map(int, line.split()[1:])
    return Load(requests / (micros / 1e6), p50 / 1000, p99 / 1000,
                status_errors + socket_errors)

