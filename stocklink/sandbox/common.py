"""What every channel simulator shares: a lock, failure switches and a request log.

A simulator subclasses :class:`SandboxState` and calls :func:`install` on its Flask
app with a function that renders the platform's own maintenance / server-error body.
Routes under ``/sandbox/`` are the control surface and are never affected by the
failure switches, so a test can always switch them off again.

Control endpoints added by :func:`install` (JSON in, JSON out):

- ``POST /sandbox/maintenance`` ``{"on": true}``
- ``POST /sandbox/fail-next`` ``{"count": 2, "status": 503}`` — next N API requests fail
- ``POST /sandbox/delay`` ``{"seconds": 1.5}`` — every API request sleeps first (0 = off);
  ``{"seconds": 1.5, "after": true}`` — every API request is *applied* first and its answer is
  held back that long (the window in which a caller that dies has written without knowing it)
- ``GET /sandbox/requests`` — the recorded API requests, oldest first (the last
  :data:`REQUEST_LOG_SIZE`)
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

REQUEST_LOG_SIZE = 2000  # the demo runs for hours: keep the log bounded


class SandboxState:
    """Thread-safe base state of a simulator: failure switches and the request log."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.maintenance = False
        self.delay = 0.0
        self.answer_delay = 0.0
        self._fail_next: list[int] = []
        self.requests: deque[dict] = deque(maxlen=REQUEST_LOG_SIZE)

    def set_maintenance(self, on: bool = True) -> None:
        """Answer every API request as the platform does during maintenance."""
        with self.lock:
            self.maintenance = on

    def fail_next(self, count: int = 1, status: int = 500) -> None:
        """Make the next ``count`` API requests fail with HTTP ``status``."""
        with self.lock:
            self._fail_next.extend([status] * count)

    def set_delay(self, seconds: float, *, after: bool = False) -> None:
        """Sleep ``seconds`` before serving each API request (0 switches it off); with
        ``after``, serve it first and hold back the answer instead."""
        with self.lock:
            if after:
                self.answer_delay = max(0.0, float(seconds))
            else:
                self.delay = max(0.0, float(seconds))

    def record(self, entry: dict) -> None:
        """Append one request to the log (tests inspect request shapes through it)."""
        with self.lock:
            self.requests.append(entry)

    def take_fault(self) -> tuple[float, int | None, bool]:
        """``(delay, forced_status, maintenance)`` for the request being served."""
        with self.lock:
            status = self._fail_next.pop(0) if self._fail_next else None
            return self.delay, status, self.maintenance


def _request_entry() -> dict:
    body: object
    if request.is_json:
        body = request.get_json(silent=True)
    elif request.form:
        body = request.form.to_dict()
    else:
        body = request.get_data(as_text=True) or None
    return {
        "method": request.method,
        "path": request.path,
        "query": request.args.to_dict(),
        "headers": {k: v for k, v in request.headers.items()
                    if k.lower() in {"content-type", "user-agent"}},
        "body": body,
    }


def install(app: Flask, state: SandboxState,
            fault_response: Callable[[int | None, bool], Response]) -> None:
    """Hook the failure switches and the request log into ``app``.

    ``fault_response(status, maintenance)`` renders the platform's own answer for a
    forced HTTP error (``status``) or for maintenance (``status`` is ``None``).
    """

    @app.before_request
    def _faults():
        if request.path.startswith("/sandbox/"):
            return None
        state.record(_request_entry())
        delay, status, maintenance = state.take_fault()
        if delay:
            time.sleep(delay)
        if status is not None:
            return fault_response(status, False)
        if maintenance:
            return fault_response(None, True)
        return None

    @app.after_request
    def _hold_answer(response):
        if not request.path.startswith("/sandbox/"):
            with state.lock:
                held = state.answer_delay
            if held:
                time.sleep(held)
        return response

    @app.post("/sandbox/maintenance")
    def _maintenance():
        state.set_maintenance(bool((request.get_json(silent=True) or {}).get("on", True)))
        return jsonify(maintenance=state.maintenance)

    @app.post("/sandbox/fail-next")
    def _fail_next():
        body = request.get_json(silent=True) or {}
        state.fail_next(int(body.get("count", 1)), int(body.get("status", 500)))
        return jsonify(ok=True)

    @app.post("/sandbox/delay")
    def _delay():
        body = request.get_json(silent=True) or {}
        state.set_delay(float(body.get("seconds", 0)), after=bool(body.get("after", False)))
        return jsonify(delay=state.delay, answer_delay=state.answer_delay)

    @app.get("/sandbox/requests")
    def _requests():
        with state.lock:
            return jsonify(requests=list(state.requests))
