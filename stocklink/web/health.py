"""``GET /healthz``: database, Redis, worker and cron scheduler, for monitors (no login).

It answers within a second whatever Redis does: every Redis call goes through the quick
client (~40 ms per command, no retry of a timeout), and once Redis has failed the checks
that need it are reported down without asking again. A worker counts when its heartbeat
is fresh; workers beat every few seconds, also while a job runs, and register again when
a restarted Redis has forgotten them (stocklink/infra/worker.py), so a restart shows as a short
"down", not a long one.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify
from redis.exceptions import RedisError
from rq import cron_scheduler_registry as cron_registry
from rq import worker_registration
from rq.utils import utcparse
from sqlalchemy import text

from stocklink.infra.extensions import db
from stocklink.infra.queues import quick_redis

bp = Blueprint("health", __name__)
HEARTBEAT_STALE = timedelta(seconds=60)  # workers and cron beat every 5 s (stocklink/infra/worker.py KEEP_ALIVE)


def _check_database() -> str:
    db.session.execute(text("SELECT 1"))
    return "ok"


def _check_redis() -> str:
    quick_redis().ping()
    return "ok"


def _check_worker() -> str:
    """One round trip after the registry read: every registered worker's last heartbeat."""
    redis = quick_redis()
    keys = sorted(worker_registration.get_keys(connection=redis))
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, "last_heartbeat")
    now = datetime.now(UTC)
    for beat in pipe.execute() if keys else ():
        if beat and now - utcparse(beat.decode()) < HEARTBEAT_STALE:
            return "ok"
    return "down"


def _check_scheduler() -> str:
    """A cron scheduler that beat within :data:`HEARTBEAT_STALE` (it beats every 5 s)."""
    since = time.time() - HEARTBEAT_STALE.total_seconds()
    return "ok" if quick_redis().zrangebyscore(cron_registry.get_registry_key(), since, "+inf") else "down"


CHECKS = {"database": _check_database, "redis": _check_redis, "worker": _check_worker,
          "scheduler": _check_scheduler}
NEEDS_REDIS = {"redis", "worker", "scheduler"}


@bp.get("/healthz")
def healthz():
    """JSON status of each part; HTTP 503 when any is down."""
    status, redis_failed = {}, None
    for name, check in CHECKS.items():
        if name in NEEDS_REDIS and redis_failed:
            status[name] = f"down: redis {redis_failed}"
            continue
        try:
            status[name] = check()
        except Exception as exc:  # a health check reports, it does not raise
            status[name] = f"down: {type(exc).__name__}"
            if name == "database":
                db.session.rollback()
            elif isinstance(exc, RedisError):
                redis_failed = type(exc).__name__
    healthy = all(v == "ok" for v in status.values())
    return jsonify(status=("ok" if healthy else "down"), checks=status), (200 if healthy else 503)

