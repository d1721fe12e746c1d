"""The stock ledger: every change of a product's stock, with before, after and why (SPEC §3)."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class StockLedger(db.Model):
    __tablename__ = "stock_ledger"

    id = db.Column(db.Integer, primary_key=True)
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="CASCADE"), nullable=False,
                           index=True)
    at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, index=True)
    field = db.Column(db.String(20), nullable=False)  # smaregi_stock | reserved
    before = db.Column(db.BigInteger, nullable=False)
    after = db.Column(db.BigInteger, nullable=False)
    cause = db.Column(db.String(40), nullable=False)
    source_event = db.Column(db.String(120))
    actor = db.Column(db.String(80), nullable=False, default="system")
    note = db.Column(db.String(500))
