"""Web orders as stocklink counts them (SPEC §5, §11.3): which orders deduct, what a revision
is, what each revision deducts, and how far back each poll reads. Pure: no Flask, DB or Redis.

A channel tells stocklink what an order looks like *now*; it never says "this is a new
revision". So a revision is a content: the order's lines and quantities and whether it is
cancelled, reduced to a :func:`fingerprint`. Reading the same order again (a re-poll, the
overlap window, a webhook and a poll of one change) gives the same fingerprint and changes
nothing; a different fingerprint is a new revision, which replaces the one before (Smaregi has
no edit: cancel and register again, seed 003).
"""
from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Each poll reads again from this long before the cursor: a channel's update times are written
# by more than one of its servers, and an order saved (or indexed for search) a little late must
# still be seen. Minutes, not seconds; yet every order inside it is read again by each poll, and
# at a busy shop on a cost-limited API (Shopify prices a page of orders at up to 222 points of
# 100 a second) ten minutes of orders read every minute would use the whole budget.
OVERLAP = timedelta(minutes=3)
# A read just before a raise (SPEC §11.6) starts this long before the previous read of any kind
# began: our clock and the channel's, and an order saved a moment late.
RECENT_MARGIN = timedelta(seconds=15)
# 3 minutes, 1 with the channel's speed-up setting (seed 002).
POLL_INTERVAL_S = 180
SPEED_UP_INTERVAL_S = 60


def poll_interval_s(speed_up: bool, configured: int | None = None) -> int:
    """Seconds between two order polls of a channel: 1 minute with speed-up, else its own setting
    (3 minutes unless changed)."""
    return SPEED_UP_INTERVAL_S if speed_up else (configured or POLL_INTERVAL_S)


@dataclass(frozen=True)
class Line:
    """One order line: the channel's line id, the listing identifier, the quantity now."""

    line_id: str
    identifier: str
    quantity: int


def fingerprint(cancelled: bool, lines: Iterable[Line]) -> str:
    """One revision's content as 32 hex characters: the same lines (in any order) and the same
    cancellation give the same fingerprint. A line at quantity 0 is a line removed."""
    if cancelled:
        body = "cancelled"
    else:
        kept = sorted((line.line_id, line.identifier, line.quantity) for line in lines if line.quantity > 0)
        body = "\n".join(f"{line_id}\t{identifier}\t{quantity}" for line_id, identifier, quantity in kept)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


class Ignored(StrEnum):
    """Why an order deducts nothing."""

    BEFORE_START = "before_start"  # placed before the channel's 初期受注取得 starting point
    STATUS = "status"  # its status is not one of the channel's status conditions
    CANCELLED = "cancelled"  # cancelled before stocklink first saw it


def ignored_because(ordered_at: datetime, status: str, *, start_at: datetime | None,
                    statuses: Collection[str] | None) -> Ignored | None:
    """Why a first-seen order must not be deducted, or ``None`` when it counts.

    ``start_at`` None: no starting point set, every order counts. ``statuses`` None or empty:
    the channel has no status conditions, every status counts."""
    # Channels give times to the second: an order in the starting point's own second counts.
    if start_at is not None and ordered_at < start_at.replace(microsecond=0):
        return Ignored.BEFORE_START
    if statuses and status not in statuses:
        return Ignored.STATUS
    return None


@dataclass(frozen=True)
class Deduction:
    """One row of the deduction ledger: ``quantity`` units of ``product_id`` for one line
    (``product_id`` None: the listing is linked to nothing; recorded, deducting nothing)."""

    line_id: str
    identifier: str
    product_id: int | None
    quantity: int


def deductions(lines: Iterable[Line], products: Mapping[str, int | None],
               components: Mapping[int, Sequence[tuple[int, int]]]) -> list[Deduction]:
    """What a revision deducts: each line's quantity from the product its listing is linked to
    (``products``: identifier → product id), a set product's lines from each of its components
    (``components``: set id → ``(component id, quantity per set)``; SPEC §5). Lines at quantity
    0 deduct nothing. Two rows for one (line, product) are summed; the result is in line order."""
    rows: dict[tuple[str, int | None], Deduction] = {}
    for line in lines:
        if line.quantity <= 0:
            continue
        product_id = products.get(line.identifier)
        parts = components.get(product_id, ()) if product_id is not None else ()
        targets = [(cid, per_set * line.quantity) for cid, per_set in parts] if parts else [(product_id, line.quantity)]
        for target, quantity in targets:
            key = (line.line_id, target)
            before = rows.get(key)
            rows[key] = Deduction(line.line_id, line.identifier, target, quantity + (before.quantity if before else 0))
    return list(rows.values())


def reserved_by_product(rows: Iterable[Deduction]) -> dict[int, int]:
    """Units per product (rows without a product deduct nothing)."""
    totals: dict[int, int] = {}
    for row in rows:
        if row.product_id is not None:
            totals[row.product_id] = totals.get(row.product_id, 0) + row.quantity
    return totals


def read_since(cursor_at: datetime | None, start_at: datetime | None, now: datetime) -> datetime:
    """Where a poll reads from: the cursor less :data:`OVERLAP`, never before the starting point
    (orders changed before it cannot be new ones); the first poll, from the starting point (初期受注取得
    set two days back takes two days of orders), or without one from ``now`` less the overlap."""
    if cursor_at is None and start_at is not None:
        return start_at
    since = (cursor_at or now) - OVERLAP
    if start_at is not None and since < start_at:
        since = start_at
    return since


def recent_since(last_read_at: datetime | None, cursor_at: datetime | None, start_at: datetime | None,
                 now: datetime) -> datetime:
    """Where a read "up to now" before a raise starts: shortly before the previous read of the
    channel's orders began (it took in everything changed before that), never before the
    starting point; with no read known, where a poll would read from (:func:`read_since`)."""
    if last_read_at is None:
        return read_since(cursor_at, start_at, now)
    since = last_read_at - RECENT_MARGIN
    return max(since, start_at) if start_at is not None else since


# Past this many changed orders a poll reads its window whole from the oldest of them (a page
# holds 10) rather than one query each.
READ_ONE_BY_ONE = 10


# How far apart stocklink's clock and a channel's may be.
CLOCK_SKEW = timedelta(seconds=5)


@dataclass(frozen=True)
class Held:
    """What stocklink holds of an order: the channel time of the revision taken, and when (our
    clock, just before the request) the latest read that gave it was made."""

    changed_at: datetime | None
    read_at: datetime | None


def orders_to_read(changes: Iterable[tuple[str, datetime]], held: Mapping[str, Held], *,
                   same_second: bool = True) -> list[str]:
    """Of a listing of changes ``(order id, channel time)``, the orders to read whole, each once in
    the listing's order: those not taken in yet; those whose channel time is later than the
    revision taken; and (``same_second``) those whose time is the same second (channels give no
    more) when the read that gave it came within that second or the clock skew after it, so a
    second change in the same second may have been missed.

    The read before a raise passes ``same_second=False``: an order a webhook brought is read
    within that window nearly always, so re-reading them there would read every such order again
    on the push's path (Shopify: 22 points each); the next poll reads them again instead."""
    wanted: dict[str, None] = {}
    for order_id, changed_at in changes:
        if order_id not in wanted and _stale(changed_at, held.get(order_id), same_second):
            wanted[order_id] = None
    return list(wanted)


def _stale(changed_at: datetime, held: Held | None, same_second: bool) -> bool:
    if held is None or held.changed_at is None:
        return True
    listed, taken = changed_at.replace(microsecond=0), held.changed_at.replace(microsecond=0)
    if listed != taken:
        return listed > taken
    return same_second and (held.read_at is None or held.read_at < taken + timedelta(seconds=1) + CLOCK_SKEW)


def next_cursor(cursor_at: datetime | None, polled_from: datetime) -> datetime:
    """The cursor after a complete poll that started at ``polled_from`` (our clock, taken before
    the first request): every change before it has been read. It never moves back; a channel
    clock off from ours by less than :data:`OVERLAP` loses nothing, as each poll reads again
    from the cursor less the overlap."""
    return cursor_at if cursor_at is not None and cursor_at > polled_from else polled_from


def registration_key(channel_id: int, order_id: str, revision: int, action: str) -> str:
    """The idempotency key of one registration, written into Smaregi as its reference: 32
    characters at most (a shipment's identificationNo), the same for the same revision and action."""
    digest = hashlib.sha256(f"{channel_id}\t{order_id}\t{revision}\t{action}".encode()).hexdigest()
    return f"SL{action[0].upper()}{digest[:29]}"
