"""``GET /healthz``: database, Redis, worker and cron scheduler, for monitors (no login)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Blueprint, jsonify
from rq import Worker
from rq import cron_scheduler_registry as cron_registry
from sqlalchemy import text

from stocklink.extensions import db
from stocklink.models._types import as_utc
from stocklink.queues import get_redis

bp = Blueprint("health", __name__)
HEARTBEAT_STALE = timedelta(minutes=2)


def _check_database() -> str:
    db.session.execute(text("SELECT 1"))
    return "ok"


def _check_redis() -> str:
    get_redis().ping()
    return "ok"


def _check_worker() -> str:
    now = datetime.now(UTC)
    for worker in Worker.all(connection=get_redis()):
        beat = as_utc(worker.last_heartbeat)
        if beat is not None and now - beat < HEARTBEAT_STALE:
            return "ok"
    return "down"


def _check_scheduler() -> str:
    redis = get_redis()
    cron_registry.cleanup(redis)
    return "ok" if cron_registry.get_keys(redis) else "down"


CHECKS = {"database": _check_database, "redis": _check_redis, "worker": _check_worker,
          "scheduler": _check_scheduler}


@bp.get("/healthz")
def healthz():
    """JSON status of each part; HTTP 503 when any is down."""
    status = {}
    for name, check in CHECKS.items():
        try:
            status[name] = check()
        except Exception as exc:  # a health check reports, it does not raise
            status[name] = f"down: {type(exc).__name__}"
            if name == "database":
                db.session.rollback()
    healthy = all(v == "ok" for v in status.values())
    return jsonify(status=("ok" if healthy else "down"), checks=status), (200 if healthy else 503)
