"""/api/webhooks over the real app (Flask test client) on each backend: the
Admins' operations, who may use them, what is accepted, and what is recorded.

Webhooks are on (as from the environment) and no delivery follower runs in the
app: a delivery a test needs is recorded in the webhooks' store directly."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask

from application.settings import Settings
from projections.webhooks import tables
from projections.webhooks.secrets import SecretBox
from smartscheduler.bootstrap import create_app
from tests.web.support import Tokens

PUBLIC_URL = "https://93.184.215.14/hook"  # a public address: no DNS needed
ON = {"webhooks": True, "embedded_webhooks": False}


@pytest.fixture
def tokens(test_settings: Settings) -> Tokens:
    return Tokens(test_settings)


@pytest.fixture
def app(test_settings: Settings) -> Any:
    built = create_app(test_settings.with_(**ON))
    yield built
    built.extensions["smartscheduler"].close()


def _register(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/webhooks", json={"url": PUBLIC_URL, **body}, headers=headers)


def test_an_admin_registers_lists_shows_rotates_and_deletes(app: Flask, tokens: Tokens):
    client, admin = app.test_client(), tokens.admin()
    made = _register(client, admin, eventTypes=["JobCancelled"], regions=["North"],
                     description="ERP")
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["secret"].startswith("whsec_")
    assert made.headers["Location"].endswith(f"/api/webhooks/{body['id']}")
    assert {k: body[k] for k in ("url", "eventTypes", "regions", "description", "status",
                                 "createdBy")} == {
        "url": PUBLIC_URL, "eventTypes": ["JobCancelled"], "regions": ["North"],
        "description": "ERP", "status": "Active", "createdBy": "admin-1"}
    assert body["createdAt"].endswith("Z")

    listed = client.get("/api/webhooks", headers=admin).get_json()
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    shown = client.get(f"/api/webhooks/{body['id']}", headers=admin).get_json()
    assert "secret" not in shown and shown["id"] == body["id"]

    rotated = client.post(f"/api/webhooks/{body['id']}/rotate-secret", headers=admin)
    assert rotated.status_code == 200
    assert rotated.get_json()["secret"] not in (None, body["secret"])

    assert client.delete(f"/api/webhooks/{body['id']}", headers=admin).status_code == 204
    gone = client.get(f"/api/webhooks/{body['id']}", headers=admin)
    assert gone.status_code == 404 and gone.get_json()["code"] == "webhook_not_found"
    assert client.delete(f"/api/webhooks/{body['id']}", headers=admin).status_code == 404
    assert client.get("/api/webhooks", headers=admin).get_json() == []

    store = app.extensions["smartscheduler"].webhook_store
    with store._tx(commit=False) as c:  # who deleted it, and when, stays recorded
        c.execute(store._q("SELECT created_by, deleted_by, deleted_at, secret "
                           "FROM webhook_endpoints WHERE id = ?"), (body["id"],))
        row = c.fetchone()
    assert (row["created_by"], row["deleted_by"]) == ("admin-1", "admin-1")
    assert row["deleted_at"] > 0
    sealed = row["secret"]  # sealed: the dump alone holds no secret
    assert rotated.get_json()["secret"] not in sealed
    assert SecretBox(None).open(sealed) == rotated.get_json()["secret"]


@pytest.mark.parametrize("role", ["Dispatcher", "Contractor"])
def test_only_an_admin_may(app: Flask, tokens: Tokens, role: str):
    client = app.test_client()
    headers = tokens.dispatcher() if role == "Dispatcher" else tokens.contractor(
        "00000000-0000-0000-0000-000000000001")
    for method, path in [("post", "/api/webhooks"), ("get", "/api/webhooks"),
                         ("get", "/api/webhooks/x"), ("delete", "/api/webhooks/x"),
                         ("post", "/api/webhooks/x/rotate-secret"),
                         ("get", "/api/webhooks/x/deliveries"),
                         ("post", "/api/webhooks/x/deliveries/y/retry")]:
        reply = getattr(client, method)(path, json={"bad": 1} if method == "post" else None,
                                        headers=headers)
        assert reply.status_code == 403, (method, path, reply.get_json())


@pytest.mark.parametrize("body", [
    {"url": "ftp://example.com/x"}, {"url": "not a url"}, {"url": "https://"},
    {"url": "https://a\u0000b.example/x"}, {"url": "https://example.com/" + "a" * 3000},
    {"url": PUBLIC_URL, "eventTypes": ["JobExploded"]}, {"url": PUBLIC_URL, "x": 1},
    {"url": "https://user:pw@example.com/x"}, {},
    {"url": "https://bücher.example/x"}, {"url": "https://example.com/caf\u00e9"},
])
def test_what_is_refused(app: Flask, tokens: Tokens, body: dict[str, Any]):
    reply = app.test_client().post("/api/webhooks", json=body, headers=tokens.admin())
    assert reply.status_code == 422, reply.get_json()
    assert reply.get_json()["code"] == "validation_failed"


def test_unknown_ids_and_a_delivery_that_cannot_be_retried(app: Flask, tokens: Tokens):
    client, admin = app.test_client(), tokens.admin()
    endpoint = _register(client, admin).get_json()["id"]
    for path in ("/api/webhooks/nope", "/api/webhooks/00000000-0000-0000-0000-000000000000",
                 "/api/webhooks/nope/deliveries"):
        assert client.get(path, headers=admin).get_json()["code"] == "webhook_not_found"
    missing = client.post(f"/api/webhooks/{endpoint}/deliveries/"
                          "00000000-0000-0000-0000-000000000000/retry", headers=admin)
    assert missing.status_code == 404
    listed = client.get(f"/api/webhooks/{endpoint}/deliveries?status=Dead", headers=admin)
    assert listed.status_code == 200 and listed.get_json() == []
    assert client.get(f"/api/webhooks/{endpoint}/deliveries?status=Nope",
                      headers=admin).status_code == 422


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/x", "https://localhost/x", "https://10.1.2.3/x",
    "https://192.168.0.1/x", "https://169.254.169.254/latest", "https://[::1]/x",
    "https://[::ffff:127.0.0.1]/x", "https://100.64.0.1/x", "http://93.184.215.14/x",
    "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:a9fe:a9fe::1]/",
    "https://[::a9fe:a9fe]/", "https://[::ffff:0:a9fe:a9fe]/", "https://[fec0::1]/",
])
def test_production_refuses_private_and_plain_http_urls(test_settings: Settings,
                                                        tokens: Tokens, url: str):
    settings = test_settings.with_(environment="production",
                                   webhook_key=Fernet.generate_key().decode(), **ON)
    app = create_app(settings)
    try:
        client = app.test_client()
        reply = client.post("/api/webhooks", json={"url": url}, headers=tokens.admin())
        assert reply.status_code == 422, reply.get_json()
        assert "url" in reply.get_json()["errors"]
        ok = client.post("/api/webhooks", json={"url": PUBLIC_URL}, headers=tokens.admin())
        assert ok.status_code == 201, ok.get_json()
    finally:
        app.extensions["smartscheduler"].close()


def test_production_takes_a_name_that_does_not_resolve_yet(test_settings: Settings,
                                                          tokens: Tokens):
    # It names no address to refuse; each send resolves it and checks again.
    settings = test_settings.with_(environment="production",
                                   webhook_key=Fernet.generate_key().decode(), **ON)
    app = create_app(settings)
    try:
        reply = app.test_client().post("/api/webhooks", headers=tokens.admin(),
                                       json={"url": "https://does-not-resolve.invalid/x"})
        assert reply.status_code == 201, reply.get_json()
    finally:
        app.extensions["smartscheduler"].close()


def test_production_without_a_key_registers_nothing(test_settings: Settings, tokens: Tokens):
    app = create_app(test_settings.with_(environment="production", **ON))
    try:
        reply = app.test_client().post("/api/webhooks", json={"url": PUBLIC_URL},
                                       headers=tokens.admin())
        assert reply.status_code == 503
        assert reply.get_json()["code"] == "webhooks_unavailable"
    finally:
        app.extensions["smartscheduler"].close()


def test_no_delivery_of_a_disabled_endpoint_is_retried(app: Flask, tokens: Tokens):
    client, admin = app.test_client(), tokens.admin()
    endpoint = _register(client, admin).get_json()["id"]
    store = app.extensions["smartscheduler"].webhook_store
    dead = tables.Delivery(
        id=str(uuid.uuid4()), endpoint_id=endpoint, event_id=str(uuid.uuid4()),
        position=1, type="JobCreated", payload="{}", status=tables.DEAD, attempts=8,
        last_status_code=500, last_error=None, next_attempt_at=None,
        created_at=time.time())
    store.record([dead], 1, 1)
    retry = f"/api/webhooks/{endpoint}/deliveries/{dead.id}/retry"
    store.disable(endpoint, "410 Gone", time.time())

    refused = client.post(retry, headers=admin)

    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["code"] == "delivery_not_retryable"
    assert "disabled" in refused.get_json()["detail"]
    listed = client.get(f"/api/webhooks/{endpoint}/deliveries", headers=admin).get_json()
    assert [d["status"] for d in listed] == ["Dead"]  # left as it was


def test_a_dead_delivery_of_an_active_endpoint_is_retried(app: Flask, tokens: Tokens):
    client, admin = app.test_client(), tokens.admin()
    endpoint = _register(client, admin).get_json()["id"]
    dead = tables.Delivery(
        id=str(uuid.uuid4()), endpoint_id=endpoint, event_id=str(uuid.uuid4()),
        position=1, type="JobCreated", payload="{}", status=tables.DEAD, attempts=8,
        last_status_code=500, last_error=None, next_attempt_at=None,
        created_at=time.time())
    app.extensions["smartscheduler"].webhook_store.record([dead], 1, 1)

    retried = client.post(f"/api/webhooks/{endpoint}/deliveries/{dead.id}/retry",
                          headers=admin)

    assert retried.status_code == 202, retried.get_json()
    assert retried.get_json()["status"] == "Failed"


def test_with_webhooks_off_none_is_registered(test_settings: Settings, tokens: Tokens):
    app = create_app(test_settings.with_(webhooks=False))
    try:
        reply = app.test_client().post("/api/webhooks", json={"url": PUBLIC_URL},
                                       headers=tokens.admin())
        assert reply.status_code == 503, reply.get_json()
        assert reply.get_json()["code"] == "webhooks_unavailable"
        assert "SMARTSCHEDULER_WEBHOOKS=false" in reply.get_json()["detail"]
        assert app.test_client().get("/api/webhooks", headers=tokens.admin()).get_json() == []
    finally:
        app.extensions["smartscheduler"].close()
