"""Orders (受注): every web order stocklink took in, its revisions, its Smaregi registrations and
their history; retry now, or resolve by hand with a note (SPEC §5: a failed registration stays
reserved and visible until it succeeds or the merchant resolves it)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.jobs.inbox import enqueue_refresh
from stocklink.jobs.orders import enqueue_poll, enqueue_registration
from stocklink.models import Channel, Order, OrderLine, Registration, StockLedger
from stocklink.models._types import as_utc, utcnow
from stocklink.models.orders import ORDER_STATES
from stocklink.platforms.registry import PLATFORMS
from stocklink.services import order_registration
from stocklink.services.channel_clients import reads_orders
from stocklink.web.fragments import page_or_fragment

bp = Blueprint("orders", __name__, url_prefix="/orders")
PAGE_SIZE = 100


def state_labels() -> dict:
    return {"reserved": _("Reserved, not yet in Smaregi"), "registered": _("Registered"), "failed": _("Failed"),
            "cancelled": _("Cancelled"), "resolved": _("Resolved by hand"), "ignored": _("Not deducted"),
            "new": _("Reserved, not yet in Smaregi")}


def registration_labels() -> dict:
    return {"pending": _("Waiting"), "done": _("Done"), "failed": _("Failed"), "resolved": _("Resolved by hand"),
            "superseded": _("Replaced before it was sent")}


def ignored_labels() -> dict:
    return {"before_start": _("Placed before the initial order fetch"),
            "status": _("Its status is not one the channel's conditions count"),
            "cancelled": _("Cancelled before stocklink saw it")}


@bp.get("/")
def index():
    q = (request.args.get("q") or "").strip()[:100]
    state = request.args.get("state") or ""
    if state not in ORDER_STATES:
        state = ""
    stmt = select(Order)
    if q:
        stmt = stmt.where(Order.channel_order_id.contains(q, autoescape=True))
    if state:
        stmt = stmt.where(Order.state == state)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    orders = db.session.scalars(stmt.order_by(Order.id.desc()).limit(PAGE_SIZE)).all()
    ids = [o.id for o in orders]
    pending = {}
    if ids:
        for registration in db.session.scalars(select(Registration).where(
                Registration.order_id.in_(ids), Registration.state.in_(("pending", "failed")))
                .order_by(Registration.id)):
            pending.setdefault(registration.order_id, registration)
    channels = {c.id: c for c in db.session.scalars(select(Channel).order_by(Channel.id))}
    readers = [c for c in channels.values() if reads_orders(c)]
    return page_or_fragment("orders/index.html", "orders/_rows.html", orders=orders, total=total, q=q,
                            state=state, states=ORDER_STATES, labels=state_labels(), pending=pending,
                            channels=channels, readers=readers)


@bp.get("/<int:order_id>")
def show(order_id: int):
    """:raise 404: no such order."""
    order = db.session.get(Order, order_id) or abort(404)
    lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)
                               .order_by(OrderLine.revision, OrderLine.id)).all()
    registrations = db.session.scalars(select(Registration).where(Registration.order_id == order.id)
                                       .order_by(Registration.id)).all()
    prefix = f"order:{order.channel_id}:{order.channel_order_id}#"
    ledger = db.session.scalars(select(StockLedger).where(StockLedger.source_event.like(
        prefix.replace("%", "/%").replace("_", "/_") + "%", escape="/")).order_by(StockLedger.id)).all()
    return render_template("orders/show.html", order=order, lines=lines, registrations=registrations,
                           ledger=ledger, channel=db.session.get(Channel, order.channel_id), labels=state_labels(),
                           registration_labels=registration_labels(), ignored_labels=ignored_labels())


@bp.post("/<int:order_id>/retry")
def retry(order_id: int):
    """Send the order's waiting registrations now."""
    order = db.session.get(Order, order_id) or abort(404)
    count = order_registration.retry_now(order)
    db.session.commit()
    if count:
        enqueue_registration(order.id)
        flash(_("Sending the registration again."), "info")
    else:
        flash(_("Nothing is waiting to be registered for this order."), "info")
    return redirect(url_for("orders.show", order_id=order.id))


@bp.post("/<int:order_id>/resolve")
def resolve(order_id: int):
    """The merchant settled it themselves; a note says how (required)."""
    order = db.session.get(Order, order_id) or abort(404)
    note = (request.form.get("note") or "").strip()
    if not note:
        flash(_("Write a note saying how the order was settled."), "error")
        return redirect(url_for("orders.show", order_id=order.id))
    if len(note) > 1000:
        flash(_("The note is too long (at most 1,000 characters)."), "error")
        return redirect(url_for("orders.show", order_id=order.id))
    smaregi_ids = order_registration.resolve_by_hand(order, note, current_user.username)
    db.session.commit()
    if smaregi_ids:
        enqueue_refresh(smaregi_ids)
    flash(_("Resolved by hand. Its reserved units were given back and the stock is read again from Smaregi."),
          "info")
    return redirect(url_for("orders.show", order_id=order.id))


JST = ZoneInfo("Asia/Tokyo")


def _local_input(moment) -> str:
    """An aware moment as a ``datetime-local`` value in Japan time (what the merchant types)."""
    return as_utc(moment).astimezone(JST).strftime("%Y-%m-%dT%H:%M") if moment else ""


@bp.route("/channels/<int:channel_id>", methods=["GET", "POST"])
def channel_settings(channel_id: int):
    """A channel's order settings: 初期受注取得 (the starting point: orders placed before it are
    never deducted; moved back, the next poll reads from it) and the status conditions.
    :raise 404: no such channel, or one that has no orders to read."""
    channel = db.session.get(Channel, channel_id) or abort(404)
    if not reads_orders(channel):
        abort(404)
    platform = PLATFORMS[channel.kind]
    if request.method == "POST":
        text = (request.form.get("start") or "").strip()
        try:
            start = datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=JST).astimezone(UTC) if text else None
        except ValueError:
            start = None
            flash(_("The initial order fetch must be a date and time, e.g. 2026-12-01 09:00."), "error")
            return redirect(url_for("orders.channel_settings", channel_id=channel.id))
        if start is not None and start > utcnow() + timedelta(days=1):
            flash(_("The initial order fetch cannot be in the future."), "error")
            return redirect(url_for("orders.channel_settings", channel_id=channel.id))
        known = [value for value, _label in platform.order_statuses]
        chosen = [value for value in request.form.getlist("status") if value in known]
        if known and not chosen:
            flash(_("Choose at least one order status to count."), "error")
            return redirect(url_for("orders.channel_settings", channel_id=channel.id))
        channel.order_statuses = None if set(chosen) == set(platform.order_statuses_default) else chosen
        if start is not None:
            if channel.orders_start_at is None or start < as_utc(channel.orders_start_at):
                channel.orders_cursor_at = None  # read again from the new starting point
            channel.orders_start_at = start
        db.session.commit()
        enqueue_poll(channel.id)
        flash(_("Order settings saved. The channel's orders are being read now."), "info")
        return redirect(url_for("orders.channel_settings", channel_id=channel.id))
    chosen = channel.order_statuses if channel.order_statuses is not None else list(platform.order_statuses_default)
    return render_template("orders/channel.html", channel=channel, platform=platform, chosen=set(chosen),
                           start=_local_input(channel.orders_start_at),
                           cursor=channel.orders_cursor_at, polled=channel.orders_polled_at)
