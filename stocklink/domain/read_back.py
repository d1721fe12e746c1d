"""Reading a channel's stock back: the budget, what a read means, and when a channel is stale.

Pure: no Flask, database or HTTP. SPEC §11.10: read-back runs on a budget, paced to a share of
the channel's documented request rate, and what it finds feeds the difference report (差異商品,
seed 002). SPEC §11.6: a difference is first news from the channel (a sale there not yet
imported, the merchant's own edit), so stocklink never raises a channel above what it last
read there from a figure that does not know about that read.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta
from fractions import Fraction

READ_BACK_SHARE = Fraction(1, 4)
"""The share of a channel's documented request rate that read-back may use; pushes keep the rest."""


def read_budget(rate_per_s: float, interval_s: float, share: Fraction = READ_BACK_SHARE) -> int:
    """How many read requests one read-back run of a channel may send: ``share`` of the channel's
    ``rate_per_s`` over the ``interval_s`` between runs, at least one (a channel with a very low
    rate is still read, one request per run).

    :raise ValueError: on a rate or interval that is not positive.
    """
    if rate_per_s <= 0 or interval_s <= 0:
        raise ValueError(f"rate and interval must be positive, got {rate_per_s} and {interval_s}")
    return max(1, math.floor(Fraction(rate_per_s) * share * Fraction(interval_s)))


def channel_news_at(confirmed: int | None, confirmed_at: datetime | None,
                    last_pushed: int | None) -> datetime | None:
    """When the channel last told stocklink something stocklink had not written itself.

    The channel's last confirmed stock is news when it differs from what stocklink last wrote
    there (a read-back, or a compare-and-set refused as stale, found the channel elsewhere); a
    confirmation of stocklink's own write is not. ``None``: no news (or no time for it).
    """
    if confirmed is None or confirmed_at is None or confirmed == last_pushed:
        return None
    return confirmed_at


def may_raise(target: int, channel: int | None, *, difference_open: bool,
              news_at: datetime | None, fact_at: datetime | None) -> bool:
    """Whether a push may write ``target`` onto a channel that holds ``channel`` (SPEC §11.6).

    Lowering (or keeping) is always allowed, and so is writing over an unknown value. Raising is
    not while a difference is open (it waits for the merchant's 反映, or the channel's heal-after
    setting), nor when the channel's latest news (:func:`channel_news_at`) is not older than the
    fact the target is based on: a figure computed before that read cannot know what the
    channel sold. A raise based on a newer fact (a restock at the POS after the read) is allowed.
    """
    if channel is None or target <= channel:
        return True
    if difference_open:
        return False
    if news_at is None:
        return True
    return fact_at is not None and fact_at > news_at


def is_stale(last_read: datetime | None, last_write: datetime | None, since: datetime, now: datetime,
             threshold: timedelta, *, work_waiting: bool) -> bool:
    """Whether a channel's sync has gone quiet (SPEC §11.10; the silent stop, field research B7):
    work is waiting for it and its last successful read or write (or, never synced, ``since``,
    when it was added) is older than ``threshold``."""
    if not work_waiting:
        return False
    latest = max((t for t in (last_read, last_write) if t is not None), default=since)
    return now - latest > threshold


def sold_unheard(offered: int | None, pending_delta: int, total: int) -> bool:
    """Whether a channel offers less than stocklink's total once the deltas it has not been sent
    yet are counted (``offered + pending_delta < total``): it took an order stocklink has not taken
    in yet (SPEC §11.6), or the merchant lowered it by hand. ``None`` (not known) is never less."""
    return offered is not None and offered + pending_delta < total
