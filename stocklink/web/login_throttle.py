"""Failed logins, counted in Redis per (user name, client address) and, looser, per address.

Counting per address alone let one operator's ten typos lock out everyone behind the same
nginx (every request came from 127.0.0.1). Now a user name is refused from one address after
``LOGIN_ATTEMPTS_PER_15_MIN`` failures there: the same operator elsewhere, and colleagues at
the same address, still log in. Someone trying many user names from one address meets the
looser ``LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN``. Each count lives 15 minutes after its latest
failure; a successful login clears that user's count at that address, never the address's
(a known account must not reset a spray). The client address is ``request.remote_addr``,
which is the browser's own only when ``TRUSTED_PROXIES`` says how many proxies to look past.
"""
from __future__ import annotations

import hashlib

from flask import current_app, request

from stocklink.infra.queues import get_redis

WINDOW_S = 15 * 60
PREFIX = "stocklink:login-attempts"


def _keys(username: str) -> tuple[str, str]:
    # Hashed: a user name is whatever was typed (any length, any characters).
    name = hashlib.sha256(username.encode("utf-8")).hexdigest()[:32]
    address = request.remote_addr or "-"
    return f"{PREFIX}:user:{name}:{address}", f"{PREFIX}:address:{address}"


def refused(username: str) -> bool:
    """True while this user name at this address, or this address, has used up its attempts."""
    user_key, address_key = _keys(username)
    per_user, per_address = get_redis().mget(user_key, address_key)
    return (int(per_user or 0) >= current_app.config["LOGIN_ATTEMPTS_PER_15_MIN"]
            or int(per_address or 0) >= current_app.config["LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN"])


def count_failure(username: str) -> None:
    pipe = get_redis().pipeline()
    for key in _keys(username):
        pipe.incr(key)
        pipe.expire(key, WINDOW_S)
    pipe.execute()


def clear(username: str) -> None:
    """After a successful login: this user's count at this address starts again."""
    user_key, _address_key = _keys(username)
    get_redis().delete(user_key)
