"""Unlinkable products waiting for the merchant, and the exclusion list (SPEC §4, seed 000)."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class ConfirmationItem(db.Model):
    """確認が必要な商品: one row per Smaregi product, however often it was skipped."""

    __tablename__ = "confirmation_items"

    id = db.Column(db.Integer, primary_key=True)
    smaregi_product_id = db.Column(db.String(20), nullable=False, unique=True)
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="SET NULL"))
    product_code = db.Column(db.String(64))
    name = db.Column(db.String(255))
    reason = db.Column(db.String(40), nullable=False)  # no_code | no_listing | aborted
    first_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    last_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    times_skipped = db.Column(db.Integer, nullable=False, default=1)
    last_inbox_id = db.Column(db.Integer, db.ForeignKey("smaregi_inbox.id", ondelete="SET NULL"))
    decision = db.Column(db.String(20))  # None | do_not_exclude (abort mode: process the resend)


class Exclusion(db.Model):
    """在庫連携対象外アイテム: skipped silently in every mode."""

    __tablename__ = "exclusions"

    id = db.Column(db.Integer, primary_key=True)
    smaregi_product_id = db.Column(db.String(20), nullable=False, unique=True)
    product_code = db.Column(db.String(64))
    name = db.Column(db.String(255))
    automatic = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
