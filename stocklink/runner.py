"""``make run``: everything on one machine, stopped together by Ctrl-C.

Starts an embedded Redis when ``REDIS_URL`` is unset, migrates the database, applies
``STOCKLINK_CONFIG`` if given, starts the demo (sandbox Smaregi and channels with a sample
catalogue) when Smaregi is not configured, then runs the web server, one RQ worker (with
its scheduler) and RQ's cron scheduler as child processes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from flask_migrate import upgrade

from stocklink import create_app
from stocklink.infra.queues import start_embedded_redis
from stocklink.services import merchant_settings
from stocklink.services.provisioning import load_file

CHILD_STOP_TIMEOUT = 10


def _log(message: str) -> None:
    print(f"[stocklink] {message}", flush=True)


def _prepare(app) -> dict:
    """Migrate, provision and (with no Smaregi) start the demo. Returns what to print."""


    info = {}
    with app.app_context():
        upgrade()
        if app.config.get("STOCKLINK_CONFIG"):
            result = load_file(app.config["STOCKLINK_CONFIG"])
            _log(f"loaded {app.config['STOCKLINK_CONFIG']}: {result}")
        if not merchant_settings.smaregi_configured() or merchant_settings.get("smaregi.contract_id") == "demo":
            info["demo"] = True
    return info


def main() -> int:
    os.environ.setdefault("FLASK_APP", "app")
    instance_path = os.environ.setdefault("STOCKLINK_INSTANCE_PATH", os.path.abspath("instance"))
    os.makedirs(instance_path, exist_ok=True)
    port = int(os.environ.get("PORT", "5000"))
    redis_server = None
    if not os.environ.get("REDIS_URL"):
        redis_server, url = start_embedded_redis(instance_path)
        os.environ["REDIS_URL"] = url
        _log(f"embedded Redis at {url}")

    app = create_app()
    info = _prepare(app)
    children: list[subprocess.Popen] = []
    demo = None
    stopping = False

    def stop(*_args):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if info.get("demo"):
            # Only the demo loads the sandbox; a configured shop never imports it.
            from stocklink.sandbox.demo import start_demo

            demo = start_demo(app, stocklink_url=f"http://127.0.0.1:{port}")
            _log(f"demo: sandbox Smaregi and channels at {demo.url} (control pages {demo.url}/smaregi/sandbox/ "
                 f"and {demo.url}/channels/)")
        flask = [sys.executable, "-m", "flask", "--app", "app"]
        children.append(subprocess.Popen(flask + ["run", "--host", "127.0.0.1", "--port", str(port),
                                                  "--no-reload", "--no-debugger"]))
        children.append(subprocess.Popen(flask + ["worker"]))
        children.append(subprocess.Popen(flask + ["cron"]))
        _log(f"console: http://127.0.0.1:{port}/")
        if demo is not None:
            _log(f"login: user {demo.username} / password {demo.password}")
        else:
            _log("login: create an operator with `flask --app app user create NAME`")
        _log("Ctrl-C stops everything")
        while not stopping:
            if any(child.poll() is not None for child in children):
                _log("a child process exited; stopping")
                break
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT
        for child in children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
        if demo is not None:
            demo.stop()
        if redis_server is not None:
            redis_server.shutdown()
        _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
