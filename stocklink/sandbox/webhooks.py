"""Webhook deliveries for the simulators: signed POSTs sent from a background thread.

A simulator keeps one :class:`WebhookSender`; :meth:`WebhookSender.send` queues a delivery
and returns at once, so a slow or dead receiver never blocks the simulated API. One daemon
thread delivers in order. The body is signed as Shopify signs it (platform-apis-channels.md
§7.5): base64 of HMAC-SHA256 of the raw body with the app's client secret.

Test controls: :meth:`drop_next` (the next deliveries are never sent, as a lost webhook),
:meth:`duplicate_next` (the next deliveries are sent twice with the same delivery id, as
Shopify's retries do) and :meth:`flush` (wait until everything queued has been attempted).
``log`` records every attempt: ``{"id", "topic", "url", "status"}`` (``status`` the HTTP
status, ``"dropped"`` or the transport error's name).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import queue
import threading
import uuid

import requests

DELIVERY_TIMEOUT = 5.0


def sign(secret: str, body: bytes) -> str:
    """Base64 HMAC-SHA256 of ``body`` with ``secret``: the ``X-Shopify-Hmac-SHA256`` value."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class WebhookSender:
    """Queues and delivers signed webhook POSTs; see the module docstring."""

    def __init__(self, secret: str, shop_domain: str) -> None:
        self.secret = secret
        self.shop_domain = shop_domain
        self.log: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._drop = 0
        self._duplicate = 0
        self._thread: threading.Thread | None = None

    def drop_next(self, count: int = 1) -> None:
        with self._lock:
            self._drop += count

    def duplicate_next(self, count: int = 1) -> None:
        with self._lock:
            self._duplicate += count

    def send(self, topic: str, url: str, body: bytes) -> str:
        """Queue one delivery of ``body`` to ``url``; returns its ``X-Shopify-Webhook-Id``."""
        delivery_id = str(uuid.uuid4())
        with self._lock:
            dropped = self._drop > 0
            self._drop -= dropped
            copies = 0 if dropped else 2 if self._duplicate > 0 else 1
            self._duplicate -= copies == 2
            if dropped:
                self.log.append({"id": delivery_id, "topic": topic, "url": url, "status": "dropped"})
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()
        for _ in range(copies):
            self._queue.put((delivery_id, topic, url, body))
        return delivery_id

    def flush(self) -> None:
        """Block until every queued delivery has been attempted."""
        self._queue.join()

    def _run(self) -> None:
        with requests.Session() as session:
            while True:
                delivery_id, topic, url, body = self._queue.get()
                headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
                           "X-Shopify-Shop-Domain": self.shop_domain,
                           "X-Shopify-Webhook-Id": delivery_id,
                           "X-Shopify-Hmac-SHA256": sign(self.secret, body)}
                try:
                    status: int | str = session.post(url, data=body, headers=headers,
                                                     timeout=DELIVERY_TIMEOUT).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.log.append({"id": delivery_id, "topic": topic, "url": url, "status": status})
                self._queue.task_done()
