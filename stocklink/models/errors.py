"""Errors shown to the merchant (SPEC §6): level 9 stops a channel, level 8 is retried."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class ErrorRecord(db.Model):
    """One error, stored as facts and rendered in the merchant's language when shown.

    ``message_key`` names the sentence and ``message_params`` fills it in
    (:mod:`stocklink.services.merchant_text` holds the sentences); ``message`` is the
    platform's or the exception's own words, shown apart as a detail ("" when there are none).
    A row written before revision 0007 has no key: its ``message`` is the whole sentence.
    """

    __tablename__ = "errors"

    id = db.Column(db.Integer, primary_key=True)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    source = db.Column(db.String(40), nullable=False)  # smaregi | channel | registration | webhook
    level = db.Column(db.Integer, nullable=False)
    kind = db.Column(db.String(40), nullable=False)
    message = db.Column(db.Text, nullable=False)
    message_key = db.Column(db.String(60))
    message_params = db.Column(db.JSON)
    code = db.Column(db.String(40))
    occurrences = db.Column(db.Integer, nullable=False, default=1)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    last_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    resolved_at = db.Column(db.DateTime(timezone=True))

    channel = db.relationship("Channel")
