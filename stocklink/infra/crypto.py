"""Encryption at rest for credentials (Fernet, key derived from ``SECRET_KEY``).

Changing ``SECRET_KEY`` makes stored credentials unreadable: they must be entered again.
"""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted (the SECRET_KEY changed)."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"stocklink-credentials:" + current_app.config["SECRET_KEY"].encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(value) -> str:
    """Encrypt any JSON-serialisable value."""
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt(token: str | None, default=None):
    """Decrypt what :func:`encrypt` returned; ``default`` for an empty column."""
    if not token:
        return default
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretUnreadable("stored secret cannot be decrypted with this SECRET_KEY") from exc


def mask(value: str | None) -> str:
    """What the console shows of a secret: never the whole value."""
    if not value:
        return ""
    if len(value) <= 8:
        return "•" * len(value)
    return value[:2] + "•" * 6 + value[-2:]
