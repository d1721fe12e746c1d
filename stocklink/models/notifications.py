"""Every notification e-mail, stored before it is sent and shown on the outbox page (SPEC §7)."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class OutboxMessage(db.Model):
    __tablename__ = "outbox"

    id = db.Column(db.Integer, primary_key=True)
    kind = db.Column(db.String(40), nullable=False, index=True)
    recipients = db.Column(db.String(1000), nullable=False, default="")
    subject = db.Column(db.String(500), nullable=False)
    body = db.Column(db.Text, nullable=False)
    attachments = db.Column(db.JSON, nullable=False, default=list)  # [{filename, content_type, text}]
    status = db.Column(db.String(20), nullable=False, default="pending")  # pending | sent | failed | off
    attempts = db.Column(db.Integer, nullable=False, default=0)
    error = db.Column(db.Text)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    sent_at = db.Column(db.DateTime(timezone=True))
