"""Web orders, their deduction ledger, and their registration in Smaregi (SPEC §5, §11.3).

- :class:`Order`: one row per order of a channel, with the revision stocklink holds now (a
  revision is one content of the order: its lines and quantities, or its cancellation).
- :class:`OrderLine`: the deduction ledger. One row per (order, revision, the channel's line
  id, product deducted — a set line deducts each component), unique: a revision's lines are
  inserted once whoever inserts them, and only the insert that wrote the row reserves.
- :class:`Registration`: the Smaregi side, an outbox row per action (register a revision,
  cancel one) with its own idempotency key, written into Smaregi as the record's reference.
"""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow

# An order's state, as the Orders screen filters it.
ORDER_STATES = ("reserved", "registered", "failed", "cancelled", "resolved", "ignored")


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        db.UniqueConstraint("channel_id", "channel_order_id", name="uq_orders_channel_order"),
        db.Index("ix_orders_state", "state"),
    )

    id = db.Column(db.Integer, primary_key=True)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False)
    channel_order_id = db.Column(db.String(100), nullable=False)
    revision = db.Column(db.Integer, nullable=False, default=1)
    # domain.orders.fingerprint of the revision held: a re-read with the same content is the same revision.
    fingerprint = db.Column(db.String(64), nullable=False)
    state = db.Column(db.String(20), nullable=False, default="reserved")
    # Why an order is ignored: placed before 初期受注取得, or a status the conditions do not count.
    ignored_reason = db.Column(db.String(40))
    channel_status = db.Column(db.String(60))
    cancelled = db.Column(db.Boolean, nullable=False, default=False)
    ordered_at = db.Column(db.DateTime(timezone=True))
    channel_updated_at = db.Column(db.DateTime(timezone=True))
    # Our clock just before the latest read that gave this revision (or the same one again).
    channel_read_at = db.Column(db.DateTime(timezone=True))
    first_seen_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    # Resolved by hand on the Orders screen: who and why.
    note = db.Column(db.String(1000))
    resolved_by = db.Column(db.String(80))

    lines = db.relationship("OrderLine", back_populates="order", cascade="all, delete-orphan",
                            order_by="OrderLine.id")


class OrderLine(db.Model):
    """One row of the deduction ledger (SPEC §11.3)."""

    __tablename__ = "order_lines"
    __table_args__ = (
        db.UniqueConstraint("order_id", "revision", "line_id", "product_id", name="uq_order_lines_deduction"),
        db.CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    )

    id = db.Column(db.Integer, primary_key=True)
    order_id = db.Column(db.Integer, db.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    revision = db.Column(db.Integer, nullable=False)
    line_id = db.Column(db.String(100), nullable=False)
    listing_identifier = db.Column(db.String(255), nullable=False)
    # The product whose stock this row deducts (a set line: one row per component); no product:
    # the line names a listing linked to nothing, recorded and shown, deducting nothing.
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="SET NULL"))
    quantity = db.Column(db.Integer, nullable=False)
    unit_price = db.Column(db.Integer)
    code = db.Column(db.String(255))
    title = db.Column(db.String(255))
    # reserved: counted in products.reserved; released: Smaregi holds it (registered, re-read);
    # returned: the revision was replaced or cancelled before it was registered; none: deducts nothing.
    state = db.Column(db.String(12), nullable=False, default="reserved")
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    order = db.relationship("Order", back_populates="lines")


class Registration(db.Model):
    """The Smaregi side of an order revision: register it, or cancel its registration."""

    __tablename__ = "registrations"
    __table_args__ = (db.Index("ix_registrations_state", "state"),)

    id = db.Column(db.Integer, primary_key=True)
    order_id = db.Column(db.Integer, db.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    revision = db.Column(db.Integer, nullable=False)
    action = db.Column(db.String(10), nullable=False)  # register | cancel
    mode = db.Column(db.String(12), nullable=False)  # shipment | transaction
    # Written into Smaregi with the record (≤ 32 characters: a shipment's identificationNo), so a
    # send whose outcome is unknown is looked up by it before it is ever sent again.
    idempotency_key = db.Column(db.String(32), nullable=False, unique=True)
    # pending | done | failed | resolved (by hand) | superseded (replaced before it was ever sent)
    state = db.Column(db.String(20), nullable=False, default="pending")
    smaregi_ref = db.Column(db.String(100))
    attempts = db.Column(db.Integer, nullable=False, default=0)
    last_error = db.Column(db.Text)
    next_attempt_at = db.Column(db.DateTime(timezone=True))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    done_at = db.Column(db.DateTime(timezone=True))


class ChannelWebhook(db.Model):
    """An order webhook from a channel (Shopify ``orders/*``), stored before it is answered.

    It is a trigger, as a Smaregi notification is: the channel's orders are then polled (one path
    for every order, however it was heard of), and the row is marked processed by the first poll
    that started after it arrived. Unique per channel on the platform's delivery id, so a
    redelivery is stored once."""

    __tablename__ = "channel_webhooks"
    __table_args__ = (
        db.UniqueConstraint("channel_id", "delivery_id", name="uq_channel_webhooks_delivery"),
        db.Index("ix_channel_webhooks_unprocessed", "channel_id", "processed_at"),
    )

    id = db.Column(db.Integer, primary_key=True)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False)
    topic = db.Column(db.String(60), nullable=False)
    delivery_id = db.Column(db.String(100), nullable=False)
    order_id = db.Column(db.String(100))
    body = db.Column(db.Text, nullable=False)
    received_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    processed_at = db.Column(db.DateTime(timezone=True))


class ExpectedEcho(db.Model):
    """A stock movement stocklink expects Smaregi to record for one of its registrations (a web
    order's sale, or its cancellation), recorded before the registration is sent: the delta
    channels had the units when they were reserved, so that movement is not forwarded to them
    again (:func:`stocklink.domain.delta.without_echoes`). Matched once (``consumed_at``); one
    left unmatched is ignored after :data:`stocklink.services.echoes.EXPECT_FOR`."""

    __tablename__ = "expected_echoes"
    __table_args__ = (db.Index("ix_expected_echoes_open", "product_id", "consumed_at"),)

    id = db.Column(db.Integer, primary_key=True)
    registration_id = db.Column(db.Integer, db.ForeignKey("registrations.id", ondelete="CASCADE"), nullable=False,
                                index=True)
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    amount = db.Column(db.BigInteger, nullable=False)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    consumed_at = db.Column(db.DateTime(timezone=True))
