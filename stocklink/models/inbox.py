"""Durable inbox of Smaregi notifications (SPEC §11.1: inbox first)."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class SmaregiInbox(db.Model):
    """``dedupe_key`` is contract + ``Smaregi-Event-Id`` (Platform) or a hash of the body
    (legacy), unique, so a resend is stored once and processed once.

    ``status``: received → processing (``claimed_by``: the drain that holds it, a lease
    renewed in ``claimed_at``) → done, or failed (retried from ``next_attempt_at``), or ignored (nothing to apply).
    """

    __tablename__ = "smaregi_inbox"

    id = db.Column(db.Integer, primary_key=True)
    dedupe_key = db.Column(db.String(128), nullable=False, unique=True)
    generation = db.Column(db.String(10), nullable=False)  # legacy | platform
    event = db.Column(db.String(60), nullable=False)
    payload = db.Column(db.JSON, nullable=False)
    received_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    status = db.Column(db.String(20), nullable=False, default="received", index=True)
    attempts = db.Column(db.Integer, nullable=False, default=0)
    processed_at = db.Column(db.DateTime(timezone=True))
    error = db.Column(db.Text)
    claimed_at = db.Column(db.DateTime(timezone=True))  # renewed by the holding drain's heartbeat
    claimed_by = db.Column(db.String(40))  # the holding drain's token: only it may mark the row done
    next_attempt_at = db.Column(db.DateTime(timezone=True))
