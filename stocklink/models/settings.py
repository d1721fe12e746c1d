"""Merchant settings: one row per key, secrets encrypted (see :mod:`stocklink.services.merchant_settings`)."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class Setting(db.Model):
    __tablename__ = "settings"

    key = db.Column(db.String(100), primary_key=True)
    # JSON text for plain values; a Fernet token when ``secret`` is true.
    value = db.Column(db.Text, nullable=False)
    secret = db.Column(db.Boolean, nullable=False, default=False)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
