"""Dashboard: channel health, latest failure, queue sizes, pending work."""
from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.models import (
    Channel,
    ErrorRecord,
    Listing,
    Order,
    Product,
    Registration,
    SmaregiInbox,
)
from stocklink.services.setup_checklist import steps as setup_steps
from stocklink.services.stale_sync import stale_channels
from stocklink.web.confirmations import queue_size

bp = Blueprint("dashboard", __name__)


def _count(stmt) -> int:
    return db.session.scalar(stmt) or 0


def _counts() -> dict[str, int]:
    return {
        "products": _count(select(func.count(Product.id))),
        "inbox_pending": _count(select(func.count(SmaregiInbox.id)).where(
            SmaregiInbox.status.in_(("received", "processing", "failed")))),
        "confirmations": queue_size(),
        "dirty_listings": _count(select(func.count(Listing.id)).where(Listing.dirty.is_(True))),
        "pending_registrations": _count(select(func.count(Registration.id)).where(
            Registration.state.in_(("pending", "failed")))),
        "errors": _count(select(func.count(ErrorRecord.id)).where(ErrorRecord.resolved_at.is_(None))),
    }


def _pending_registrations(limit: int = 10) -> list[tuple]:
    """The oldest registrations still waiting: (order, channel name, registration), for the card."""
    rows = db.session.execute(
        select(Order, Channel.name, Registration).join(Registration, Registration.order_id == Order.id)
        .join(Channel, Channel.id == Order.channel_id)
        .where(Registration.state.in_(("pending", "failed"))).order_by(Registration.id).limit(limit)).all()
    return [tuple(row) for row in rows]


@bp.get("/")
def index():
    channels = db.session.scalars(select(Channel).order_by(Channel.id)).all()
    latest_error = db.session.scalars(
        select(ErrorRecord).where(ErrorRecord.resolved_at.is_(None)).order_by(ErrorRecord.last_seen_at.desc())
    ).first()
    return render_template("dashboard/index.html", channels=channels, latest_error=latest_error,
                           counts=_counts(), setup=setup_steps(), stale=stale_channels(),
                           pending=_pending_registrations())


@bp.get("/counts")
def counts():
    """The counts alone: the dashboard asks for them again on ``review-changed``."""
    return render_template("dashboard/_counts.html", counts=_counts())
