"""Web orders, their lines, and their registration in Smaregi (SPEC §5, §11.3)."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        db.UniqueConstraint("channel_id", "channel_order_id", "revision", name="uq_orders_revision"),
    )

    id = db.Column(db.Integer, primary_key=True)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False)
    channel_order_id = db.Column(db.String(100), nullable=False)
    revision = db.Column(db.Integer, nullable=False, default=1)
    status = db.Column(db.String(20), nullable=False, default="new")  # new | superseded | cancelled
    ordered_at = db.Column(db.DateTime(timezone=True))
    fetched_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    raw = db.Column(db.JSON)

    lines = db.relationship("OrderLine", back_populates="order", cascade="all, delete-orphan")


class OrderLine(db.Model):
    """One line; the unique (order, line_no) is the deduction ledger key of SPEC §11.3."""

    __tablename__ = "order_lines"
    __table_args__ = (db.UniqueConstraint("order_id", "line_no", name="uq_order_lines_line"),)

    id = db.Column(db.Integer, primary_key=True)
    order_id = db.Column(db.Integer, db.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    line_no = db.Column(db.Integer, nullable=False)
    listing_identifier = db.Column(db.String(255), nullable=False)
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="SET NULL"))
    quantity = db.Column(db.Integer, nullable=False)
    unit_price = db.Column(db.Integer)
    reserved = db.Column(db.Boolean, nullable=False, default=False)

    order = db.relationship("Order", back_populates="lines")


class Registration(db.Model):
    """The Smaregi side of an order: its own outbox row with its own idempotency key."""

    __tablename__ = "registrations"

    id = db.Column(db.Integer, primary_key=True)
    order_id = db.Column(db.Integer, db.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False)
    action = db.Column(db.String(10), nullable=False)  # register | cancel
    mode = db.Column(db.String(12), nullable=False)  # shipment | transaction
    idempotency_key = db.Column(db.String(120), nullable=False, unique=True)
    state = db.Column(db.String(20), nullable=False, default="pending")  # pending | done | failed | resolved
    smaregi_ref = db.Column(db.String(100))
    attempts = db.Column(db.Integer, nullable=False, default=0)
    last_error = db.Column(db.Text)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    done_at = db.Column(db.DateTime(timezone=True))
