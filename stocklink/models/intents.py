"""Write intents: every write to a channel is recorded here before it is sent (SPEC §11).

A row is ``open`` from just before the request leaves until the bookkeeping of its answer
commits; an ``open`` row found later means the outcome is unknown (a timeout, a reset, a
worker killed mid-call) and is settled by reading the channel back, never by sending the
write again blind (:mod:`stocklink.services.write_intents`).
"""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class WriteIntent(db.Model):
    """``mode``: ``relative`` (ColorMe ``increment``: sending twice doubles it),
    ``compare_and_set`` (Shopify), ``absolute`` or ``delta`` (NextEngine upload; ``ref`` is its
    ``que_id`` once known). ``before`` / ``after`` are the channel quantity stocklink expected
    before the write and wants after it; ``delta`` what a relative write adds.
    ``outcome`` once settled: ``applied``, ``not_applied`` or ``ambiguous``."""

    __tablename__ = "write_intents"
    __table_args__ = (db.Index("ix_write_intents_channel_status", "channel_id", "status"),)

    id = db.Column(db.Integer, primary_key=True)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False)
    listing_id = db.Column(db.Integer, db.ForeignKey("listings.id", ondelete="CASCADE"))
    batch = db.Column(db.String(64), nullable=False)
    mode = db.Column(db.String(20), nullable=False)
    identifier = db.Column(db.String(255), nullable=False)
    before = db.Column(db.BigInteger)
    after = db.Column(db.BigInteger)
    delta = db.Column(db.BigInteger)
    key = db.Column(db.String(255), nullable=False, default="", server_default="")
    fact_at = db.Column(db.DateTime(timezone=True))
    status = db.Column(db.String(20), nullable=False, default="open", server_default="open")
    outcome = db.Column(db.String(20))
    ref = db.Column(db.String(100))
    read_back = db.Column(db.BigInteger)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    settled_at = db.Column(db.DateTime(timezone=True))
