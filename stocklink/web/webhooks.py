"""``POST /webhooks/smaregi/<customer code>``: Smaregi's stock notifications, both generations;
``POST /webhooks/channels/<channel id>/orders``: a channel's order webhooks (Shopify ``orders/*``).

Authenticated by the customer code (and, for Platform webhooks, the contract id and an
optional shared-secret header); stored durably, then answered at once (SPEC §4, §11.1).

What a request may carry is bounded before anything is read: :data:`MAX_BODY` bytes (413),
the parser's depth, type and id checks (400 with the reason), and wrong customer codes per
client address (429, :mod:`stocklink.web.webhook_throttle`).
"""
from __future__ import annotations

import hmac
import logging
import re

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from stocklink.infra.extensions import csrf, db
from stocklink.jobs.orders import enqueue_webhooks
from stocklink.models import Channel
from stocklink.platforms.base import PlatformError
from stocklink.platforms.interfaces import WebhookMalformed, WebhookRefused
from stocklink.platforms.smaregi.webhook import MalformedNotification, parse_legacy, parse_platform
from stocklink.services import channel_webhooks, merchant_settings
from stocklink.services.channel_clients import credentials_of, platform_of
from stocklink.services.smaregi_inbox import already_stored, store_notification
from stocklink.services.smaregi_stock import abort_check
from stocklink.web import webhook_throttle
from stocklink.web.wake import wake_after_store

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)

# The largest notification Smaregi documents is one naming 1,000 products: a 出庫 has at most
# 1,000 details, a sale at most 999 (platform-apis-smaregi.md §3.10, §3.11). As a legacy
# 在庫情報送信 with every field at its longest that is 379 KB form-encoded; as a Platform
# pos:stock, 87 KB (tests/test_webhook.py builds both). 1 MiB leaves more than twice that.
MAX_BODY = 1024 * 1024
# A refused body up to this size is read and dropped so that its connection can carry the next
# request; a longer one is not read at all (the server then drops the connection).
DRAIN_LIMIT = 16 * MAX_BODY


_CODE_IN_PATH = re.compile(r"(/webhooks/smaregi/)[^/\s?\"]+")


def _redact(value):
    return _CODE_IN_PATH.sub(r"\1<customer code>", value) if isinstance(value, str) else value


class RedactCustomerCode(logging.Filter):
    """Take the customer code out of access-log lines: it is the webhook's secret, and werkzeug's
    server (``make run``) and gunicorn's access log (when one is configured) write each request's path."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = _redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _redact(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_redact(value) for value in record.args)
        return True


def redact_access_logs() -> None:
    """Install :class:`RedactCustomerCode` on the access loggers (once per process)."""
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCustomerCode) for f in logger.filters):
            logger.addFilter(RedactCustomerCode())


def _text(body: str, status: int):
    return body, status, {"Content-Type": "text/plain; charset=utf-8"}


def _too_large() -> bool:
    """Read the body (at most :data:`MAX_BODY` bytes) and say whether it was longer.

    A declared Content-Length over the limit is refused before anything is kept. A chunked
    body has none: werkzeug stops reading it at the limit and hands back what it read, so a
    body that fills the limit is taken as one that went beyond it. The form is then parsed
    from the bytes read.
    """
    request.max_content_length = request.max_form_memory_size = MAX_BODY
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return True
    return request.content_length is None and len(data) >= MAX_BODY


def _unread(body: str, status: int, **headers):
    """An answer given without using the body: the body is read and dropped first (up to
    :data:`DRAIN_LIMIT` bytes, never kept), so the connection stays usable. gunicorn answers
    such a request with ``Connection: keep-alive`` and then drops the connection with the
    body unread: a client sending its next request on it found it closed (bench/faults.py)."""
    length = request.content_length
    if length and length <= DRAIN_LIMIT:
        stream = request.environ["wsgi.input"]
        while length > 0:
            chunk = stream.read(min(length, 64 * 1024))
            if not chunk:
                break
            length -= len(chunk)
    text, status, plain = _text(body, status)
    return text, status, {**plain, **headers}


def _too_many(seconds: int):
    return _unread("too_many_wrong_codes", 429, **{"Retry-After": str(seconds)})


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@bp.post("/smaregi/<code>")
@csrf.exempt
def smaregi(code: str):
    """:raise 400: ``code_mismatch`` (seed 001), a malformed body, or (abort mode) unlinkable
    products named in the body. :raise 413: a body over :data:`MAX_BODY`. :raise 429: too
    many wrong customer codes from this address. :raise 503: the notification could not be stored.

    The hot path is one INSERT and one Redis command: settings come from this process's
    one-second cache, the throttle is asked from memory, and the inbox is woken rather than
    given a job per notification.
    """
    wait = webhook_throttle.retry_after(request.remote_addr)
    if wait:
        return _too_many(wait)
    try:
        expected = merchant_settings.cached("smaregi.customer_code")
    except SQLAlchemyError:
        db.session.rollback()
        return _unread("unavailable", 503)
    if not _same(code, expected or ""):
        wait = webhook_throttle.wrong_code(request.remote_addr)
        return _too_many(wait) if wait else _unread("code_mismatch", 400)
    if _too_large():
        return _unread(f"too_large: at most {MAX_BODY} bytes", 413)
    try:
        if request.headers.get("Smaregi-Event"):
            notification = parse_platform(request.headers, request.get_data())
            contract = merchant_settings.cached("smaregi.contract_id")
            if notification.payload.get("contractId") != contract or \
                    request.headers.get("Smaregi-Contract-Id", contract) != contract:
                return _text("contract_mismatch", 400)
            secret = merchant_settings.cached("smaregi.webhook_secret")
            header = merchant_settings.cached("smaregi.webhook_secret_header")
            if secret and not _same(request.headers.get(header, ""), secret):
                return _text("secret_mismatch", 400)
        else:
            notification = parse_legacy(request.form)
    except MalformedNotification as exc:
        return _text(f"malformed: {exc}", 400)
    except RequestEntityTooLarge:
        return _text(f"too_large: at most {MAX_BODY} bytes", 413)

    if merchant_settings.cached("sync.unlinkable_mode") == "abort" and notification.movements:
        try:
            # A resend of a notification already stored is answered as stored, before the
            # abort check: it was accepted once and will be (or was) processed once.
            if already_stored(notification):
                return jsonify(result="ok")
            rejected = abort_check(notification)
        except (SQLAlchemyError, PlatformError):  # Smaregi is asked about products new to stocklink
            db.session.rollback()
            log.exception("abort check failed")
            return _text("unavailable", 503)
        if rejected:
            names = ", ".join(f"{p['smaregi_product_id']}:{p['name'] or '-'}" for p in rejected)
            return _text(f"unlinkable_products: {names}", 400)

    try:
        _inbox_id, created = store_notification(notification)
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not store a Smaregi notification")
        return _text("unavailable", 503)
    if created:  # bounded to ~40 ms on Redis; a failed wake is retried in the background
        wake_after_store(current_app._get_current_object())
    return jsonify(result="ok")


@bp.post("/channels/<int:channel_id>/orders")
@csrf.exempt
def channel_orders(channel_id: int):
    """A channel's order webhook: the platform checks its signature, it is stored, then answered
    200; the order it names is read from the channel at once (the webhook is a trigger).

    :raise 401: the signature does not match (nothing stored). :raise 400: not an order webhook
    of this platform. :raise 404: no such channel, or its platform sends no order webhooks.
    :raise 413: a body over :data:`MAX_BODY`. :raise 503: it could not be stored (the platform
    delivers it again)."""
    if _too_large():
        return _unread(f"too_large: at most {MAX_BODY} bytes", 413)
    try:
        channel = db.session.get(Channel, channel_id)
        platform = platform_of(channel) if channel is not None else None
        if platform is None or platform.order_webhook is None:
            return _text("unknown_channel", 404)
        body = request.get_data()
        delivery = platform.order_webhook(credentials_of(channel), request.headers, body)
        created = channel_webhooks.store(channel, delivery, body)
    except WebhookRefused:
        return _text("signature_mismatch", 401)
    except WebhookMalformed as exc:
        return _text(f"malformed: {exc}", 400)
    except RequestEntityTooLarge:
        return _text(f"too_large: at most {MAX_BODY} bytes", 413)
    except SQLAlchemyError:
        db.session.rollback()
        log.exception("could not store a channel webhook")
        return _text("unavailable", 503)
    if created:
        try:
            enqueue_webhooks(channel_id)
        except Exception:  # stored: the poll sweep takes it within seconds
            log.exception("could not enqueue the order poll of channel %s", channel_id)
    return jsonify(result="ok")
