"""Endpoint secrets: made, and stored encrypted.

A secret is `whsec_` and 32 random bytes in base64, as Standard Webhooks says.
It is stored encrypted with Fernet (AES-128-CBC and HMAC-SHA256) under a key
from the environment (`SMARTSCHEDULER_WEBHOOK_KEY`), so a dump of the database
alone cannot sign a delivery. Several keys, comma-separated, decrypt (the first
encrypts): a key is rotated by putting the new one first.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, MultiFernet

PREFIX = "whsec_"

DEVELOPMENT_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"smartscheduler-development-webhook-key").digest()).decode()
"""The key when none is set (public, so refused in production, with a warning)."""


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    """Encrypts secrets to store them, and decrypts them to sign."""

    def __init__(self, keys: str | None) -> None:
        found = [key.strip() for key in (keys or DEVELOPMENT_KEY).split(",") if key.strip()]
        self._fernet = MultiFernet([Fernet(key.encode()) for key in found])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        return self._fernet.decrypt(sealed.encode()).decode()
