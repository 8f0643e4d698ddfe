"""A verified token is remembered: verified once, reused until it expires (or for
VERIFIED_FOR at most), and only ever the exact token that passed."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from application.settings import Settings
from domain.values import Actor
from web import auth
from web.auth import VERIFIED_FOR, TokenVerifier, mint_token
from web.problems import Problem

SETTINGS = Settings(jwt_secret="cache-secret-" + "x" * 32)


class Clock:
    """web.auth's view of the time, moved by hand (PyJWT keeps the real one)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(auth, "time", fake)
    return fake


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT is asked to decode from now on."""
    calls: list[str] = []
    decode = jwt.decode

    def spy(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", spy)
    return calls


def bearer(ttl: int = 3600, sub: str = "dispatcher-1") -> str:
    return "Bearer " + mint_token(SETTINGS, roles=["Dispatcher"], sub=sub, ttl=ttl)


def test_a_token_is_verified_once_then_remembered(decodes):
    verifier, header = TokenVerifier(SETTINGS), bearer()

    first, second = verifier.actor(header), verifier.actor(header)

    assert first == second == Actor("dispatcher-1", ("Dispatcher",))
    assert len(decodes) == 1


def test_a_remembered_token_is_verified_again_once_it_expires(decodes, clock):
    verifier, header = TokenVerifier(SETTINGS), bearer(ttl=30)
    verifier.actor(header)

    clock.offset = 29
    verifier.actor(header)
    assert len(decodes) == 1
    clock.offset = 31  # past exp by web.auth's clock: PyJWT decides again
    verifier.actor(header)
    assert len(decodes) == 2


def test_a_long_lived_token_is_verified_again_after_verified_for(decodes, clock):
    verifier, header = TokenVerifier(SETTINGS), bearer(ttl=3600)
    verifier.actor(header)

    clock.offset = VERIFIED_FOR - 1
    verifier.actor(header)
    assert len(decodes) == 1
    clock.offset = VERIFIED_FOR + 1
    verifier.actor(header)
    assert len(decodes) == 2


def test_an_expired_token_is_refused_though_it_was_remembered(decodes):
    verifier, header = TokenVerifier(SETTINGS), bearer(ttl=2)  # valid for 1 s at least
    verifier.actor(header)
    time.sleep(max(0.0, verifier._verified[header[7:]][1] - time.time()) + 0.05)

    with pytest.raises(Problem, match="expired"):
        verifier.actor(header)


def test_a_refused_token_is_not_remembered(decodes):
    verifier, header = TokenVerifier(SETTINGS), bearer()
    forged = header[:-2] + ("AA" if not header.endswith("AA") else "BB")

    for _ in range(2):
        with pytest.raises(Problem):
            verifier.actor(forged)
    assert len(decodes) == 2
    assert verifier._verified == {}


def test_a_tampered_copy_of_a_remembered_token_is_refused():
    verifier, header = TokenVerifier(SETTINGS), bearer()
    verifier.actor(header)
    head, _payload, signature = header[7:].split(".")
    other = mint_token(SETTINGS, roles=["Admin"], sub="admin-1").split(".")[1]

    with pytest.raises(Problem):
        verifier.actor(f"Bearer {head}.{other}.{signature}")


def test_the_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(auth, "VERIFIED_CACHE_SIZE", 3)
    verifier = TokenVerifier(SETTINGS)

    for n in range(10):
        verifier.actor(bearer(sub=f"dispatcher-{n}"))
        assert len(verifier._verified) <= 3
