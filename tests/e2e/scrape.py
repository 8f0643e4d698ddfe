"""Reading a server's /metrics in tests: its samples by name and labels."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.servers import Client


def samples(client: Client, headers: dict[str, str] | None = None) -> dict[tuple[Any, ...], float]:
    """The scrape's samples: (name, sorted label pairs) -> value."""
    reply = client.get("/metrics", headers=headers)
    assert reply.status == 200, reply.body
    assert (reply.header("Content-Type") or "").startswith("text/plain")
    return {(sample.name, *sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(reply.body)
            for sample in family.samples}


def value(scraped: dict[tuple[Any, ...], float], name: str, **labels: str) -> float | None:
    return scraped.get((name, *sorted(labels.items())))
