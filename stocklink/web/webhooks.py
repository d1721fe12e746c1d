"""``POST /webhooks/smaregi/<customer code>``: Smaregi's stock notifications, both generations.

Authenticated by the customer code (and, for Platform webhooks, the contract id and an
optional shared-secret header); stored durably, then answered at once (SPEC §4, §11.1).
"""
from __future__ import annotations

import hmac
import logging

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from stocklink import settings
from stocklink.extensions import csrf, db
from stocklink.inbox import already_stored, store_notification
from stocklink.platforms.smaregi_webhook import MalformedNotification, parse_legacy, parse_platform
from stocklink.sync import abort_check
from stocklink.web.wake import wake_after_store

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


def _text(body: str, status: int):
    return body, status, {"Content-Type": "text/plain; charset=utf-8"}


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


@bp.post("/smaregi/<code>")
@csrf.exempt
def smaregi(code: str):
    """:raise 400: ``code_mismatch`` (seed 001), a malformed body, or (abort mode) unlinkable
    products named in the body. :raise 503: the notification could not be stored.

    The hot path is one INSERT and one Redis command: settings come from this process's
    one-second cache, and the inbox is woken rather than given a job per notification.
    """
    try:
        expected = settings.cached("smaregi.customer_code")
    except SQLAlchemyError:
        db.session.rollback()
        return _text("unavailable", 503)
    if not _same(code, expected or ""):
        return _text("code_mismatch", 400)
    try:
        if request.headers.get("Smaregi-Event"):
            notification = parse_platform(request.headers, request.get_data())
            contract = settings.cached("smaregi.contract_id")
            if notification.payload.get("contractId") != contract or \
                    request.headers.get("Smaregi-Contract-Id", contract) != contract:
                return _text("contract_mismatch", 400)
            secret = settings.cached("smaregi.webhook_secret")
            header = settings.cached("smaregi.webhook_secret_header")
            if secret and not _same(request.headers.get(header, ""), secret):
                return _text("secret_mismatch", 400)
        else:
            notification = parse_legacy(request.form)
    except MalformedNotification as exc:
        return _text(f"malformed: {exc}", 400)

    if settings.cached("sync.unlinkable_mode") == "abort" and notification.movements:
        try:
            # A resend of a notification already stored is answered as stored, before the
            # abort check: it was accepted once and will be (or was) processed once.
            if already_stored(notification):
                return jsonify(result="ok")
            rejected = abort_check(notification)
        except SQLAlchemyError:
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
    if created:  # bounded to ~100 ms on Redis; a failed wake is retried in the background
        wake_after_store(current_app._get_current_object())
    return jsonify(result="ok")
