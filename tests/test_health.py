"""/healthz reports each part and answers 503 when one is down."""
from __future__ import annotations

from rq import Worker
from rq.cron import CronScheduler

from stocklink.infra.queues import get_redis


def test_healthz_is_503_without_worker_and_scheduler(client):
    """Database and Redis up, no worker or scheduler: 503 naming what is down."""
    response = client.get("/healthz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == "ok" and checks["redis"] == "ok"
    assert checks["worker"] == "down" and checks["scheduler"] == "down"


def test_healthz_is_200_with_worker_and_scheduler(app, client):
    """A live worker heartbeat and a registered cron scheduler make it healthy."""
    with app.app_context():
        redis = get_redis()
        worker = Worker(["webhooks"], connection=redis)
        worker.register_birth()
        worker.heartbeat()
        scheduler = CronScheduler(connection=redis)
        scheduler.register_birth()
        scheduler.heartbeat()
    try:
        response = client.get("/healthz")
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == "ok"
    finally:
        with app.app_context():
            worker.register_death()
            scheduler.register_death()


def test_healthz_needs_no_login(client):
    """Monitors call it without a session."""
    assert client.get("/healthz").status_code in (200, 503)
