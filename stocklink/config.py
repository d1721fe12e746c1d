"""Infrastructure settings, read once from the environment (or ``.env``).

Merchant settings (Smaregi, channels, notifications) live in the database instead;
see :mod:`stocklink.services.merchant_settings`.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from stocklink.platforms.base import DEFAULT_TIMEOUT


def _secret_key(instance_path: Path) -> str:
    """``SECRET_KEY`` from the environment, else one generated once into ``instance/``."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _database_url(instance_path: Path) -> str:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://"):]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url or f"sqlite:///{instance_path / 'stocklink.db'}"


def _count(name: str, default: int, minimum: int) -> int:
    """A whole-number setting; a bad value stops the start naming the variable."""
    raw = os.environ.get(name, "").strip() or str(default)
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)


def from_environment(instance_path: str) -> dict:
    """Every infrastructure setting with its default, as a Flask config mapping."""
    path = Path(instance_path)
    env = os.environ.get
    return {
        "SECRET_KEY": _secret_key(path),
        "SQLALCHEMY_DATABASE_URI": _database_url(path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env("REDIS_URL", ""),
        "MAIL_SERVER": env("MAIL_SERVER", "localhost"),
        "MAIL_PORT": int(env("MAIL_PORT", "25")),
        "MAIL_USE_TLS": env("MAIL_USE_TLS", "0") in ("1", "true", "yes"),
        "MAIL_USE_SSL": env("MAIL_USE_SSL", "0") in ("1", "true", "yes"),
        "MAIL_USERNAME": env("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env("MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": env("MAIL_DEFAULT_SENDER", "stocklink@localhost"),
        "MAIL_SUPPRESS_SEND": env("MAIL_SUPPRESS_SEND", "0") in ("1", "true", "yes"),
        "STOCKLINK_CONFIG": env("STOCKLINK_CONFIG", ""),
        "PUBLIC_URL": env("STOCKLINK_PUBLIC_URL", ""),
        "BABEL_DEFAULT_LOCALE": "ja",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env("SESSION_COOKIE_SECURE", "0") in ("1", "true", "yes"),
        "WTF_CSRF_TIME_LIMIT": None,
        "LOGIN_ATTEMPTS_PER_15_MIN": _count("LOGIN_ATTEMPTS_PER_15_MIN", 10, 1),
        "LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN": _count("LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN", 50, 1),
        # How many reverse proxies (nginx: 1) stand before gunicorn and append X-Forwarded-For /
        # set X-Forwarded-Proto. 0 trusts no such header: a client could write any address there.
        "TRUSTED_PROXIES": _count("TRUSTED_PROXIES", 0, 0),
        # Read a channel's recent orders as soon as it shows a sale stocklink has not taken in (a
        # ColorMe write answered lower, a NextEngine フリー在庫数 below the total); 0 leaves them
        # to the poll, as the services in the seeds do, and saves those requests.
        "ORDER_NEWS_READS": env("ORDER_NEWS_READS", "1") not in ("0", "false", "no"),
        # Seconds a channel's API may take to answer before the call counts as a timeout (level 8,
        # retried). Not read from the environment: a deployment keeps the default, tests shorten it.
        "CHANNEL_TIMEOUT": DEFAULT_TIMEOUT,
    }
