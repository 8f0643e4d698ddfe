"""Throughput benchmarks, each printed beside a baseline measured in the same run.

Run with `make bench` or `python -m bench --help`. Benchmarks register
themselves by name (see `bench.registry`); add a module with a function
decorated by `@register("name", "summary")` and import it below. The servers
they start come from `smartscheduler.launch`, as the end-to-end tests' do.
"""

from bench import appends, commands, http, postgres, realtime, rebuild, serving, webhooks
from bench.registry import BENCHES, Bench, Row, register

__all__ = ["BENCHES", "Bench", "Row", "appends", "commands", "http", "postgres",
           "realtime", "rebuild", "register", "serving", "webhooks"]
