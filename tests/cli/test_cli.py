"""The `smartscheduler` command line, run in-process against an SQLite file."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable

import jwt
import pytest

from application.settings import Settings
from smartscheduler.bootstrap import create_app
from smartscheduler.cli import main
from tests.web.support import job_body

SECRET = "cli-secret-" + "c" * 40


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> str:
    """Only the variables these tests set: the SQLite file and the JWT secret."""
    for name in list(os.environ):
        if name.startswith("SMARTSCHEDULER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SMARTSCHEDULER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SMARTSCHEDULER_JWT_SECRET", SECRET)
    return sqlite_url


@pytest.fixture
def seed(cli_env: str) -> Callable[..., str]:
    """Creates (and cancels) a job through the HTTP app on the CLI's database."""

    def make(*, cancel: bool = True, projections: bool = True) -> str:
        settings = Settings(database_url=cli_env, jwt_secret=SECRET,
                            embedded_projections=projections)
        app = create_app(settings)
        try:
            client = app.test_client()
            token = jwt.encode({"sub": "dispatcher-9", "roles": ["Dispatcher"],
                                "exp": 4102444800}, SECRET, algorithm="HS256")
            headers = {"Authorization": f"Bearer {token}"}
            created = client.post("/api/jobs", json=job_body(),
                                  headers={**headers, "X-Request-Id": "cli-create-1"})
            job_id = created.get_json()["id"]
            if cancel:
                client.post(f"/api/jobs/{job_id}/cancel", json={"reasonCode": "Weather"},
                            headers={**headers, "X-Request-Id": "cli-cancel-2"})
            if projections:
                client.get("/api/jobs", headers=headers)  # waits for the read models
        finally:
            app.extensions["smartscheduler"].close()
        return job_id

    return make


# token ----------------------------------------------------------------------


def test_token_prints_a_token_signed_with_the_configured_secret(cli_env, capsys):
    code = main(["token", "--role", "Dispatcher"])

    out = capsys.readouterr().out.strip()
    assert code == 0
    claims = jwt.decode(out, SECRET, algorithms=["HS256"])
    assert claims["roles"] == ["Dispatcher"]
    assert claims["sub"]
    assert claims["exp"] - claims["iat"] == 3600


def test_token_takes_a_sub_a_ttl_and_several_roles(cli_env, capsys):
    code = main(["token", "--role", "Admin", "--role", "Dispatcher", "--sub", "ops-1",
                 "--ttl", "60"])

    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"])
    assert code == 0
    assert claims["roles"] == ["Admin", "Dispatcher"]
    assert claims["sub"] == "ops-1"
    assert claims["exp"] - claims["iat"] == 60


def test_a_token_from_the_cli_is_accepted_by_the_api(cli_env, capsys):
    main(["token", "--role", "Dispatcher"])
    token = capsys.readouterr().out.strip()
    app = create_app(Settings.from_env())

    try:
        response = app.test_client().get("/api/jobs",
                                          headers={"Authorization": f"Bearer {token}"})
    finally:
        app.extensions["smartscheduler"].close()

    assert response.status_code == 200


def test_a_token_from_the_cli_does_not_verify_with_another_secret(cli_env, capsys):
    main(["token", "--role", "Dispatcher"])

    token = capsys.readouterr().out.strip()

    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-" + "z" * 40, algorithms=["HS256"])


def test_token_warns_on_stderr_when_no_secret_is_configured(cli_env, capsys,
                                                            monkeypatch):
    monkeypatch.delenv("SMARTSCHEDULER_JWT_SECRET")

    code = main(["token", "--role", "Admin"])

    captured = capsys.readouterr()
    assert code == 0
    assert "SMARTSCHEDULER_JWT_SECRET" in captured.err
    assert captured.out.strip().count(".") == 2


@pytest.mark.parametrize("argv", [["token"], ["token", "--role", "Boss"]])
def test_token_refuses_a_missing_or_unknown_role(cli_env, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert capsys.readouterr().out == ""


# history --------------------------------------------------------------------


def test_history_prints_the_audit_trail_of_a_job(seed, capsys):
    job_id = seed()
    capsys.readouterr()

    code = main(["history", job_id])

    out = capsys.readouterr().out
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith("v")]
    assert len(lines) == 2
    assert re.match(r'^v1\s+\S+Z\s+JobCreated\s+by "dispatcher-9" \["Dispatcher"\]\s+'
                    r'request "cli-create-1"$', lines[0])
    assert re.match(r'^v2\s+\S+Z\s+JobCancelled\s+by "dispatcher-9"', lines[1])
    assert lines[1].endswith('request "cli-cancel-2"')
    assert '"reasonCode": "Weather"' in out


def test_history_never_prints_a_control_character_of_the_caller(cli_env, capsys):
    app = create_app(Settings(database_url=cli_env, jwt_secret=SECRET))
    try:
        token = jwt.encode({"sub": "\x1b[31mred\u2028", "roles": ["Dispatcher"],
                            "exp": 4102444800}, SECRET, algorithm="HS256")
        created = app.test_client().post("/api/jobs", json=job_body(),
                                         headers={"Authorization": f"Bearer {token}"})
    finally:
        app.extensions["smartscheduler"].close()
    capsys.readouterr()

    code = main(["history", created.get_json()["id"]])

    out = capsys.readouterr().out
    assert code == 0
    assert "\x1b" not in out and "\u2028" not in out
    assert '"\\u001b[31mred\\u2028"' in out


def test_history_json_prints_the_trail_as_the_api_does(seed, capsys):
    job_id = seed()
    capsys.readouterr()

    code = main(["history", job_id, "--json"])

    trail = json.loads(capsys.readouterr().out)
    assert code == 0
    assert trail["jobId"] == job_id
    assert [e["type"] for e in trail["events"]] == ["JobCreated", "JobCancelled"]
    assert [e["requestId"] for e in trail["events"]] == ["cli-create-1", "cli-cancel-2"]
    assert trail["events"][1]["actor"] == {"sub": "dispatcher-9", "roles": ["Dispatcher"]}


def test_history_of_an_unknown_job_is_an_error(cli_env, capsys):
    code = main(["history", "7c9e6679-7425-40de-944b-e07fc1f90ae7"])

    captured = capsys.readouterr()
    assert code == 1
    assert "no job" in captured.err
    assert captured.out == ""


def test_history_of_a_malformed_id_is_a_usage_error(cli_env, capsys):
    code = main(["history", "not-a-uuid"])

    captured = capsys.readouterr()
    assert code == 2
    assert "not-a-uuid" in captured.err


# projections ----------------------------------------------------------------


def test_projections_rebuild_prints_the_events_replayed_and_a_rate(seed, capsys):
    seed()
    seed()
    capsys.readouterr()

    code = main(["projections", "rebuild", "--no-progress"])

    out = capsys.readouterr().out
    assert code == 0
    assert re.search(r"from 4 events in [\d.]+s \([\d,]+ events/s\); 2 jobs\.", out), out


def test_projections_status_prints_the_position_against_the_log(seed, capsys):
    seed()
    capsys.readouterr()

    code = main(["projections", "status"])

    out = capsys.readouterr().out
    assert code == 0
    assert "read models: position 2 of 2 (lag 0)" in out


def test_a_rebuild_catches_up_read_models_that_lag(seed, capsys):
    seed(cancel=False, projections=False)
    main(["projections", "status"])
    before = capsys.readouterr().out

    main(["projections", "rebuild", "--no-progress"])
    main(["projections", "status"])

    after = capsys.readouterr().out
    assert "read models: position 0 of 1 (lag 1)" in before
    assert "read models: position 1 of 1 (lag 0)" in after
    assert "1 jobs." in after


def test_projections_status_on_an_empty_store_is_all_zero(cli_env, capsys):
    code = main(["projections", "status"])

    assert code == 0
    assert "read models: position 0 of 0 (lag 0)" in capsys.readouterr().out


def test_projections_status_names_a_follower_that_cannot_apply_an_event(
        cli_env, capsys, unknown_topic):
    from smartscheduler.bootstrap import build_services
    from tests.factories import store_unknown_event

    settings = Settings(database_url=cli_env, jwt_secret=SECRET)
    services = build_services(settings, run_projections=True, run_relay=False)
    try:
        _, poison = store_unknown_event(services.app, unknown_topic)
        deadline = time.monotonic() + 10
        while "read_models" not in services.views.failures():
            assert time.monotonic() < deadline, "the runner never recorded its failure"
            time.sleep(0.02)
    finally:
        services.close()
    capsys.readouterr()

    code = main(["projections", "status"])

    out = capsys.readouterr().out
    assert code == 1
    assert f"read models: position {poison - 1} of {poison} (lag 1), retrying" in out
    assert f"cannot apply event {poison} (AssignmentReconfirmedForTest)" in out
    assert "error: " in out
