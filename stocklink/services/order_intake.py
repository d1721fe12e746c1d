"""Taking web orders in (SPEC §5, §11.3, §11.4): each order a channel shows becomes an
:class:`~stocklink.models.Order`, its lines rows of the deduction ledger, its units reserved.

:func:`take_orders` is given orders as the channel holds them now (a poll, a webhook) and may
be given the same order any number of times, by any number of workers at once:

- the order row is inserted if missing (the unique (channel, order id) decides who), then
  locked; its revision changes only when the content's fingerprint does
  (:func:`stocklink.domain.orders.fingerprint`), so a re-read changes nothing;
- a new revision's ledger rows are inserted under their unique key, and the units are reserved
  in the same transaction (``reserved = reserved + n``): total stock drops at once;
- the revision it replaces gives its reserved units back; one already registered in Smaregi is
  cancelled there by a ``cancel`` registration (Smaregi has no edit, seed 003);
- every channel with a listing of the products is marked for a push; the delta channels
  (NextEngine) other than the order's own are sent the decrease, since Smaregi's record of the
  sale (a shipment, 出荷) is not forwarded to them (seed 001 §6). The order's own channel has
  sold the units already and is never sent them again.

The caller commits; nothing here talks to a platform. Registering in Smaregi is the
registrations outbox's work (:mod:`stocklink.services.order_registration`).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from stocklink.domain.orders import (
    CLOCK_SKEW,
    Ignored,
    Line,
    deductions,
    fingerprint,
    ignored_because,
    registration_key,
    reserved_by_product,
)
from stocklink.domain.stock import low_stock_crossed, total_stock
from stocklink.infra.extensions import db, insert_for
from stocklink.models import Channel, Listing, Order, OrderLine, Product, Registration, SetComponent
from stocklink.models._types import as_utc, utcnow
from stocklink.platforms.interfaces import ChannelOrder
from stocklink.platforms.registry import PLATFORMS
from stocklink.services import merchant_settings
from stocklink.services.delta_channels import add_pending_deltas, delta_channel_ids
from stocklink.services.outbox import queue_mail
from stocklink.services.stock_ledger import change_reserved, mark_listings_dirty


@dataclass
class Taken:
    """What one call did: counts for the report, the channels that now have work, and the
    registrations to send once the transaction has committed."""

    new: int = 0
    revised: int = 0
    cancelled: int = 0
    unchanged: int = 0
    ignored: int = 0
    channel_ids: set[int] = field(default_factory=set)
    registration_ids: list[int] = field(default_factory=list)


def statuses_of(channel: Channel) -> list[str]:
    """The statuses an order of ``channel`` must have to be deducted: the merchant's choice, else
    the platform's default conditions (empty: every status counts)."""
    if channel.order_statuses is not None:
        return list(channel.order_statuses)
    platform = PLATFORMS.get(channel.kind)
    return list(platform.order_statuses_default) if platform else []


def take_orders(channel: Channel, orders: Iterable[ChannelOrder], *, read_at: datetime | None = None) -> Taken:
    """Apply each order as the channel holds it now (see the module doc). ``read_at``: our clock
    just before the reads began (kept per order, domain.orders.orders_to_read). The caller commits."""
    taken = Taken()
    statuses = statuses_of(channel)
    for order in orders:
        _take(channel, order, statuses, taken, read_at)
    return taken


def _insert_if_missing(channel_id: int, order: ChannelOrder) -> None:
    insert = insert_for(db.engine.dialect.name)
    now = utcnow()
    db.session.execute(insert(Order).values(
        channel_id=channel_id, channel_order_id=order.order_id, revision=0, fingerprint="", state="new",
        cancelled=False, ordered_at=order.ordered_at, channel_updated_at=order.updated_at, first_seen_at=now,
        updated_at=now).on_conflict_do_nothing(index_elements=["channel_id", "channel_order_id"]))


def _take(channel: Channel, order: ChannelOrder, statuses: list[str], taken: Taken,
          read_at: datetime | None = None) -> None:
    lines = [Line(line.line_id, line.identifier, line.quantity) for line in order.lines]
    print_ = fingerprint(order.cancelled, lines)
    _insert_if_missing(channel.id, order)
    row = db.session.scalars(select(Order).where(Order.channel_id == channel.id,
                                                 Order.channel_order_id == order.order_id)
                             .with_for_update().execution_options(populate_existing=True)).one()
    if row.channel_updated_at is not None and as_utc(order.updated_at) < as_utc(row.channel_updated_at):
        # Read before a change already taken (a webhook's read overtaken by a poll's): old news.
        taken.unchanged += 1
        return
    row.channel_status = order.status[:60] if order.status else None
    row.channel_updated_at = order.updated_at
    if read_at is not None and (row.channel_read_at is None or as_utc(row.channel_read_at) < read_at):
        row.channel_read_at = read_at
    first = row.revision == 0
    if first or row.state == "ignored":
        # Not deducted so far: placed before the starting point or cancelled before it was seen
        # (for good), or of a status the conditions do not count (until its status does).
        if row.ignored_reason in (Ignored.BEFORE_START, Ignored.CANCELLED):
            row.fingerprint = print_
            taken.unchanged += 1
            return
        start_at = as_utc(channel.orders_start_at) if first and channel.orders_start_at else None
        reason = ignored_because(as_utc(order.ordered_at), order.status, start_at=start_at, statuses=statuses)
        if reason is None and order.cancelled:
            reason = Ignored.CANCELLED
        if reason is not None:
            row.revision, row.fingerprint, row.cancelled = max(row.revision, 1), print_, order.cancelled
            row.state, row.ignored_reason = "ignored", reason.value
            if first:
                taken.ignored += 1
            else:
                taken.unchanged += 1
            return
        _replace_revision(channel, row, order, lines, print_, taken, first=True)
        return
    if row.fingerprint == print_:
        taken.unchanged += 1
        return
    _replace_revision(channel, row, order, lines, print_, taken, first=False)


def _replace_revision(channel: Channel, row: Order, order: ChannelOrder, lines: list[Line], print_: str,
                      taken: Taken, *, first: bool) -> None:
    """The order's content changed (or it is new): give the old revision back, take the new one."""
    old = row.revision
    source = f"order:{channel.id}:{row.channel_order_id}"
    sent = bool(old) and not _withdraw(row, old)
    # Never sent: its units come back now. Sent (or perhaps sent): Smaregi may hold it, so it is
    # cancelled there, and the outbox settles its units once Smaregi has answered.
    returned = give_back(row, old, f"{source}#{old}") if old and not sent else {}
    row.revision, row.fingerprint, row.cancelled = old + 1, print_, order.cancelled
    row.ignored_reason = None
    mode = merchant_settings.get("smaregi.registration_mode")
    if sent:
        taken.registration_ids.append(_registration(channel.id, row, old, "cancel", mode))
    changes = {pid: -units for pid, units in returned.items()}
    if order.cancelled:
        row.state = "cancelled"
        taken.cancelled += 1
    else:
        reserved = _reserve(channel, row, order, lines, source)
        for pid, units in reserved.items():
            changes[pid] = changes.get(pid, 0) + units
        row.state = "reserved"
        taken.registration_ids.append(_registration(channel.id, row, row.revision, "register", mode))
        if first:
            taken.new += 1
        else:
            taken.revised += 1
    _tell_channels(channel, changes, taken)
    before = set(db.session.scalars(select(OrderLine.listing_identifier).where(
        OrderLine.order_id == row.id, OrderLine.revision == old))) if old else set()
    _own_listings_moved(channel, order, lines, first=first, before=before)
    _announce_low_stock(row, {pid: units for pid, units in changes.items() if units > 0})


# CLOCK_SKEW (domain.orders): a stock read this close to an order's time may or may not include the order.


def _own_listings_moved(channel: Channel, order: ChannelOrder, lines: list[Line], *, first: bool,
                        before: set[str]) -> None:
    """The order's own channel took (or gave back) the units itself, so its listings' confirmed
    stock moved without stocklink: the next push must not deduct them there again (a ColorMe
    relative write is computed from the confirmed stock). A new order's units come off a figure
    read before it was placed; a figure read after it already shows them; one read too close to
    tell, and any edit or cancel (the channel may or may not have restocked), becomes unknown, so
    the next push writes the figure itself."""
    wanted: dict[str, int] = dict.fromkeys(before, 0)  # the replaced revision's listings: unknown now
    for line in lines:
        wanted[line.identifier] = wanted.get(line.identifier, 0) + max(line.quantity, 0)
    if not wanted:
        return
    placed = as_utc(order.ordered_at)
    for listing in db.session.scalars(select(Listing).where(Listing.channel_id == channel.id,
                                                            Listing.identifier.in_(sorted(wanted)))):
        if listing.last_confirmed_quantity is None:
            continue
        read_at = as_utc(listing.last_confirmed_at) if listing.last_confirmed_at else None
        if first and read_at is not None and read_at < placed - CLOCK_SKEW:
            listing.last_confirmed_quantity -= wanted[listing.identifier]
        elif not first or read_at is None or read_at <= placed + CLOCK_SKEW:
            listing.last_confirmed_quantity = None


def _announce_low_stock(row: Order, reserved: dict[int, int]) -> None:
    """Seed 004 在庫数通知: one mail for the products this order took to or below their threshold
    (the product's own, else the one for all products), in the outbox with the rest."""
    if not reserved or not merchant_settings.get("notify.low_stock_on"):
        return
    default = merchant_settings.get("notify.low_stock_threshold")
    crossed = []
    for product in db.session.scalars(select(Product).where(Product.id.in_(sorted(reserved)))
                                      .execution_options(populate_existing=True)):
        threshold = product.low_stock_threshold if product.low_stock_threshold is not None else default
        after = total_stock(product.smaregi_stock, product.reserved)
        if low_stock_crossed(after + reserved[product.id], after, threshold):
            crossed.append({"code": product.product_code, "name": product.name, "total": after,
                            "threshold": threshold, "order": row.channel_order_id})
    if crossed:
        queue_mail("low_stock", _l("[stocklink] Low stock: %(n)d product(s)", n=len(crossed)), "low_stock",
                   products=crossed)


def _withdraw(row: Order, revision: int) -> bool:
    """Withdraw the registration of ``revision`` if it was never sent: True when nothing of it can
    be in Smaregi. Compare-and-set on (pending, no attempt): a worker counts its attempt, and
    commits it, before it sends (the intent), so the two can never both win."""
    registration_id = db.session.scalar(select(Registration.id).where(
        Registration.order_id == row.id, Registration.revision == revision, Registration.action == "register"))
    if registration_id is None:
        return True
    withdrawn = db.session.execute(update(Registration).where(
        Registration.id == registration_id, Registration.state == "pending", Registration.attempts == 0)
        .values(state="superseded", done_at=utcnow()).execution_options(synchronize_session=False))
    return withdrawn.rowcount == 1


def give_back(row: Order, revision: int, source_event: str) -> dict[int, int]:
    """Units of ``revision`` still reserved (Smaregi never held them) go back to total stock;
    returns them by product. The intake's edits and cancels and the outbox's settling both call it."""
    lines = db.session.scalars(select(OrderLine).where(OrderLine.order_id == row.id, OrderLine.revision == revision,
                                                       OrderLine.state == "reserved")).all()
    units: dict[int, int] = {}
    for line in lines:
        if line.product_id is not None:
            units[line.product_id] = units.get(line.product_id, 0) + line.quantity
    if not lines:
        return {}
    # Compare-and-set on the state: a line given back by another worker is not given back twice.
    given = db.session.execute(update(OrderLine).where(OrderLine.id.in_([line.id for line in lines]),
                                                       OrderLine.state == "reserved")
                               .values(state="returned").execution_options(synchronize_session=False))
    if given.rowcount != len(lines):
        raise RuntimeError(f"order {row.id}: revision {revision} given back concurrently")
    change_reserved({pid: -n for pid, n in units.items()}, cause="order:returned", source_event=source_event)
    return units


def _reserve(channel: Channel, row: Order, order: ChannelOrder, lines: list[Line], source: str) -> dict[int, int]:
    identifiers = sorted({line.identifier for line in lines})
    products = dict(db.session.execute(select(Listing.identifier, Listing.product_id).where(
        Listing.channel_id == channel.id, Listing.identifier.in_(identifiers))).all()) if identifiers else {}
    set_ids = {pid for pid in products.values() if pid is not None}
    components: dict[int, list[tuple[int, int]]] = {}
    if set_ids:
        for set_id, component_id, quantity in db.session.execute(
                select(SetComponent.set_product_id, SetComponent.component_id, SetComponent.quantity)
                .where(SetComponent.set_product_id.in_(set_ids)).order_by(SetComponent.id)):
            components.setdefault(set_id, []).append((component_id, quantity))
    rows = deductions(lines, products, components)
    detail = {line.line_id: line for line in order.lines}
    now = utcnow()
    for deduction in rows:
        source_line = detail.get(deduction.line_id)
        db.session.add(OrderLine(
            order_id=row.id, revision=row.revision, line_id=deduction.line_id[:100],
            listing_identifier=deduction.identifier[:255], product_id=deduction.product_id,
            quantity=deduction.quantity, unit_price=source_line.unit_price if source_line else None,
            code=(source_line.code or None) if source_line else None,
            title=(source_line.title or None)[:255] if source_line and source_line.title else None,
            state="reserved" if deduction.product_id is not None else "none", created_at=now))
    db.session.flush()  # the unique (order, revision, line, product) refuses a second insert here
    units = reserved_by_product(rows)
    change_reserved(units, cause="order:reserved", source_event=f"{source}#{row.revision}")
    return units


def _registration(channel_id: int, row: Order, revision: int, action: str, mode: str) -> int:
    registration = Registration(order_id=row.id, revision=revision, action=action, mode=mode,
                                idempotency_key=registration_key(channel_id, row.channel_order_id, revision, action),
                                state="pending")
    db.session.add(registration)
    db.session.flush()
    return registration.id


def _tell_channels(channel: Channel, changes: dict[int, int], taken: Taken) -> None:
    """Every channel with a listing of the changed products has work; the delta channels other
    than the order's own are sent the change (a reservation is a decrease)."""
    changed = {pid: -units for pid, units in changes.items() if units}
    if not changed:
        return
    taken.channel_ids |= mark_listings_dirty(set(changed))
    others = delta_channel_ids() - {channel.id}
    if others:
        add_pending_deltas(changed, others)
        taken.channel_ids |= others
