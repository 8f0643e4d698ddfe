"""Settings no deployment could run with are refused when they are read, and the
command line exits with the message before it starts anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from application.settings import Settings, SettingsError, retry_waits

BAD = [
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "inf"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "5,nan"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "abc"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "5,0"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "-1"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "604801"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": ", ,"}, "RETRY_SCHEDULE"),
    ({"SMARTSCHEDULER_WEBHOOK_TIMEOUT": "0"}, "WEBHOOK_TIMEOUT"),
    ({"SMARTSCHEDULER_WEBHOOK_TIMEOUT": "61"}, "WEBHOOK_TIMEOUT"),
    ({"SMARTSCHEDULER_WEBHOOK_TIMEOUT": "nan"}, "WEBHOOK_TIMEOUT"),
    ({"SMARTSCHEDULER_WEBHOOK_TIMEOUT": "inf"}, "WEBHOOK_TIMEOUT"),
    ({"SMARTSCHEDULER_WEBHOOK_TIMEOUT": "abc"}, "WEBHOOK_TIMEOUT"),
]


@pytest.mark.parametrize(("env", "named"), BAD)
def test_bad_webhook_settings_are_refused_when_read(env: dict[str, str], named: str):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_good_webhook_settings_are_taken():
    settings = Settings.from_env({"SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE": "0.5, 300,604800",
                                  "SMARTSCHEDULER_WEBHOOK_TIMEOUT": "1"})
    assert retry_waits(settings.webhook_retry_schedule) == (0.5, 300.0, 604800.0)
    assert settings.webhook_timeout == 1.0
    assert Settings.from_env({}).webhook_timeout == 15.0
    with pytest.raises(SettingsError):  # in code too
        Settings().with_(webhook_timeout=0.0)


def test_serve_refuses_to_start_with_a_message(sqlite_url: str):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SMARTSCHEDULER_")}
    env.update(SMARTSCHEDULER_DATABASE_URL=sqlite_url,
               SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE="5,abc")
    done = subprocess.run([sys.executable, "-m", "smartscheduler", "serve", "--port", "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "SMARTSCHEDULER_WEBHOOK_RETRY_SCHEDULE must be a number of seconds, not 'abc'" \
        in done.stderr
