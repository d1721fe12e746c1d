"""Redis stalls (SIGSTOP) and restarts: webhooks are answered and stored, /healthz answers 503
at once, and workers and the cron scheduler go on afterwards (issue 11, Redis faults).

Each test runs its own redis-server (tests/redis_process.py); the workers are real
``flask worker`` / ``flask cron`` processes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rq import Queue, cron_scheduler_registry, worker_registration
from rq.cron import CronScheduler
from rq.job import Job

from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis, quick_redis
from stocklink.infra.worker import StocklinkSimpleWorker
from stocklink.jobs.inbox import WAKE_KEY, sweep_inbox
from stocklink.web import wake
from tests.conftest import wait_for
from tests.redis_process import RedisProcess
from tests.test_webhook import URL, legacy_form, sale_row, stored

pytest_plugins = ["tests.fixtures_platforms"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_redis():
    folder = tempfile.mkdtemp(prefix="sl-redis-")  # short: a unix socket path has ~100 bytes
    server = RedisProcess(folder).start()
    yield server
    server.stop()


@pytest.fixture
def on_own_redis(app, own_redis):
    """The app's clients now talk to the test's own Redis."""
    app.config["REDIS_URL"] = own_redis.url
    for name in ("stocklink_redis", "stocklink_redis_quick"):
        app.extensions.pop(name, None)
    yield own_redis
    # a wake retry still running would make the next test's webhooks skip their wake
    assert wait_for(lambda: not wake._retrying.is_set(), timeout=15)


def drain_queued(app) -> bool:
    with app.app_context():
        return [job.func_name for job in get_queue(WEBHOOKS).jobs] == ["stocklink.jobs.inbox.process_inbox"]


def test_webhooks_are_answered_and_stored_while_redis_stalls(app, client, smaregi, on_own_redis):
    """Redis SIGSTOPped: every notification is stored and answered at once (redis-py's defaults
    waited out the whole stall); once Redis answers, the missed wake is retried and a drain is
    queued without another notification — also when the stalled Redis, resuming, applied the
    first wake's ``SET NX`` (sent on a pooled connection) whose answer the webhook never got."""
    with app.app_context():
        quick_redis().ping()  # a pooled connection, as in a running server
    on_own_redis.stall()
    try:
        for after in (9, 8, 7):
            started = time.monotonic()
            response = client.post(URL, data=legacy_form(sale_row(after=after)))
            took = time.monotonic() - started
            assert response.status_code == 200, response.get_data(as_text=True)
            assert took < 1.0, f"the webhook waited {took:.2f} s on a stalled Redis"
        assert stored(app) == 3
        time.sleep(0.6)  # the background retry meets the stall too, and keeps trying
        assert on_own_redis.process.poll() is None
    finally:
        on_own_redis.resume()
    assert wait_for(lambda: drain_queued(app), timeout=10)
    assert on_own_redis.client().exists(WAKE_KEY)


def test_webhook_is_stored_while_redis_is_down_and_woken_after_its_restart(app, client, smaregi, on_own_redis):
    on_own_redis.kill()
    response = client.post(URL, data=legacy_form(sale_row()))
    assert response.status_code == 200 and stored(app) == 1
    on_own_redis.start()
    assert wait_for(lambda: drain_queued(app), timeout=15)


def _healthz(client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/healthz")
    return response.status_code, response.get_json()["checks"], time.monotonic() - started


def test_healthz_answers_503_within_a_second_while_redis_stalls(client, on_own_redis):
    on_own_redis.stall()
    try:
        status, checks, took = _healthz(client)
    finally:
        on_own_redis.resume()
    assert status == 503 and took < 1.0, (took, checks)
    assert checks["database"] == "ok"
    assert checks["redis"] == "down: TimeoutError"
    assert checks["worker"] == checks["scheduler"] == "down: redis TimeoutError"


def test_healthz_answers_503_while_redis_is_down_and_recovers_after_a_restart(client, on_own_redis):
    assert _healthz(client)[1]["redis"] == "ok"  # a pooled connection, which the restart breaks
    on_own_redis.kill()
    status, checks, took = _healthz(client)
    assert status == 503 and took < 1.0 and checks["redis"] == "down: ConnectionError", (took, checks)
    on_own_redis.start()
    assert _healthz(client)[1]["redis"] == "ok"


def test_a_worker_forgotten_by_redis_registers_again(app):
    """What a restarted Redis does to a worker's registration, repaired by its next beat."""
    with app.app_context():
        redis = get_redis()
        worker = StocklinkSimpleWorker([WEBHOOKS], connection=redis)
        worker.register_birth()
        assert worker.register_again_if_forgotten() is False
        redis.flushdb()
        assert worker.register_again_if_forgotten() is True
        assert worker_registration.get_keys(connection=redis) == {worker.key}
        assert redis.hget(worker.key, "queues") == WEBHOOKS.encode()
        assert worker.register_again_if_forgotten() is False


def test_healthz_does_not_count_a_worker_whose_heartbeat_is_stale(app, client):
    with app.app_context():
        redis = get_redis()
        worker = StocklinkSimpleWorker([WEBHOOKS], connection=redis)
        worker.register_birth()
        assert client.get("/healthz").get_json()["checks"]["worker"] == "ok"
        redis.hset(worker.key, "last_heartbeat", "2026-01-01T00:00:00.000000Z")
        assert client.get("/healthz").get_json()["checks"]["worker"] == "down"


def _start(command: list[str], own_redis: RedisProcess, app, folder: Path) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": own_redis.url, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "STOCKLINK_INSTANCE_PATH": str(folder / "instance"), "MAIL_SUPPRESS_SEND": "1"}
    with open(folder / f"{command[0]}.log", "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *command], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _end(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _finished(redis, job: Job) -> bool:
    try:
        return Job.fetch(job.id, connection=redis).get_status() == "finished"
    except Exception:
        return False


def _registered_workers(redis) -> set:
    try:
        return {key for key in worker_registration.get_keys(connection=redis) if redis.hexists(key, "birth")}
    except Exception:
        return set()


def test_a_worker_survives_a_redis_restart_and_works_after(app, client, own_redis, tmp_path):
    """Redis killed and started again, empty: the worker process lives on, registers again
    (/healthz counts it), runs a job queued after the restart and one delayed by RQ's scheduler
    (whose process died with the connection), and still stops on SIGTERM."""
    worker = _start(["worker", "maintenance"], own_redis, app, tmp_path)
    try:
        redis = own_redis.client()
        assert wait_for(lambda: _registered_workers(redis), timeout=60), (tmp_path / "worker.log").read_text()
        before = Queue("maintenance", connection=redis).enqueue(sweep_inbox)
        assert wait_for(lambda: _finished(redis, before), timeout=20)

        own_redis.kill()
        time.sleep(2)
        own_redis.start()
        redis = own_redis.client()
        assert wait_for(lambda: _registered_workers(redis), timeout=20), (tmp_path / "worker.log").read_text()
        assert worker.poll() is None

        after = Queue("maintenance", connection=redis).enqueue(sweep_inbox)
        delayed = Queue("maintenance", connection=redis).enqueue_in(timedelta(seconds=1), sweep_inbox)
        assert wait_for(lambda: _finished(redis, after), timeout=20), (tmp_path / "worker.log").read_text()
        assert wait_for(lambda: _finished(redis, delayed), timeout=30), (tmp_path / "worker.log").read_text()

        app.config["REDIS_URL"] = own_redis.url
        app.extensions.pop("stocklink_redis_quick", None)
        assert client.get("/healthz").get_json()["checks"]["worker"] == "ok"
    finally:
        code = _end(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()


def test_the_cron_scheduler_survives_a_redis_restart(app, own_redis, tmp_path):
    cron = _start(["cron"], own_redis, app, tmp_path)
    try:
        redis = own_redis.client()
        assert wait_for(lambda: cron_scheduler_registry.get_keys(redis), timeout=60), \
            (tmp_path / "cron.log").read_text()
        own_redis.kill()
        time.sleep(2)
        own_redis.start()
        redis = own_redis.client()
        assert wait_for(lambda: cron_scheduler_registry.get_keys(redis), timeout=20), \
            (tmp_path / "cron.log").read_text()
        assert cron.poll() is None
    finally:
        code = _end(cron)
    assert code == 0, (tmp_path / "cron.log").read_text()


def test_a_worker_busy_when_redis_restarts_starts_again_and_works_after(app, own_redis, tmp_path):
    """Redis killed while a job runs: RQ's bookkeeping after the job fails and its work loop
    ends (the process used to exit); the worker reconnects and goes on as a new worker."""
    worker = _start(["worker", "maintenance"], own_redis, app, tmp_path)
    try:
        redis = own_redis.client()
        assert wait_for(lambda: _registered_workers(redis), timeout=60), (tmp_path / "worker.log").read_text()
        first = _registered_workers(redis)
        busy = Queue("maintenance", connection=redis).enqueue("time.sleep", 3)
        assert wait_for(lambda: Job.fetch(busy.id, connection=redis).get_status() == "started", timeout=20)
        own_redis.kill()
        time.sleep(4)  # the job ends while Redis is away
        own_redis.start()
        redis = own_redis.client()
        assert wait_for(lambda: _registered_workers(redis), timeout=30), (tmp_path / "worker.log").read_text()
        assert worker.poll() is None
        after = Queue("maintenance", connection=redis).enqueue(sweep_inbox)
        assert wait_for(lambda: _finished(redis, after), timeout=20), (tmp_path / "worker.log").read_text()
        log = (tmp_path / "worker.log").read_text()
        assert "stopped working (Redis lost?)" in log and _registered_workers(redis) != first, log
    finally:
        code = _end(worker)
    assert code == 0, (tmp_path / "worker.log").read_text()


def test_healthz_does_not_count_a_cron_scheduler_whose_heartbeat_is_stale(app, client):
    with app.app_context():
        redis = get_redis()
        scheduler = CronScheduler(connection=redis)
        scheduler.register_birth()
        assert client.get("/healthz").get_json()["checks"]["scheduler"] == "ok"
        redis.zadd(cron_scheduler_registry.get_registry_key(), {scheduler.name: time.time() - 90})
        assert client.get("/healthz").get_json()["checks"]["scheduler"] == "down"


def test_a_stopping_worker_does_not_start_its_dead_scheduler_again(app):
    """A dead scheduler process is started again on the next heartbeat, unless the worker is
    stopping (Ctrl-C stops the scheduler too; a new one would outlive the worker's stop)."""
    with app.app_context():
        worker = StocklinkSimpleWorker([WEBHOOKS], connection=get_redis())
        worker._start_scheduler()
        try:
            first = worker.scheduler._process
            assert wait_for(first.is_alive, timeout=10)
            first.kill()  # dead, as after kill -9 (a SIGTERM handler a test left may catch SIGTERM)
            first.join(timeout=10)
            worker.scheduler.release_locks()  # as a scheduler that ended frees them (RQ's locks live on otherwise)
            worker._restart_scheduler_if_dead()
            second = worker.scheduler._process
            assert second is not first and wait_for(second.is_alive, timeout=10)
            second.kill()
            second.join(timeout=10)
            worker.scheduler.release_locks()
            worker._scheduler_checked = 0.0
            worker._stop_requested = True  # what RQ's request_stop sets on Ctrl-C
            worker._restart_scheduler_if_dead()
            assert worker.scheduler._process is second and not second.is_alive()
        finally:
            process = worker.scheduler._process
            if process is not None and process.is_alive():
                process.terminate()
                process.join(timeout=10)
            worker.scheduler.release_locks()
