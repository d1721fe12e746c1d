"""The delta channels' side of a Smaregi stock movement (NextEngine, seed 001 §5; SPEC §3).

A delta channel is sent increase / decrease counts, not stock figures: each product's count
accumulates on its listings (``pending_delta``) until the push uploads it. What a movement
counts for is the domain's rule (:func:`stocklink.domain.delta.history_delta`, over the
在庫変動履歴 entries :mod:`stocklink.services.stock_history` reads after each product's cursor).

The Smaregi drain and the backfill call two functions and need to know nothing more: which
kinds take deltas (the platform declarations), which products have a listing on one, or how
a movement becomes a count. :func:`read_movements` reads over HTTP before their first write;
:func:`forward` runs in their write transaction and returns the channels that now have work.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import bindparam, select, update

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing
from stocklink.models._types import utcnow
from stocklink.platforms.registry import PLATFORMS
from stocklink.platforms.smaregi.webhook import StockMovement
from stocklink.services.stock_history import HistoryRead, apply_history, read_history


@dataclass(frozen=True)
class Forwarded:
    """What :func:`forward` added: product id → its count, and the delta channels that now have work."""

    deltas: dict[int, int] = field(default_factory=dict)
    channel_ids: set[int] = field(default_factory=set)


def _delta_kinds() -> list[str]:
    return [kind for kind, platform in PLATFORMS.items() if platform.delta]


def delta_channel_ids() -> set[int]:
    """The channels that receive increase / decrease counts."""
    return set(db.session.scalars(select(Channel.id).where(Channel.kind.in_(_delta_kinds()))))


def delta_product_ids(product_ids: set[int]) -> set[int]:
    """The products with a sync-enabled listing on a delta channel: only they need their history."""
    if not product_ids:
        return set()
    return set(db.session.scalars(select(Listing.product_id).join(Channel, Channel.id == Listing.channel_id).where(
        Listing.product_id.in_(product_ids), Listing.sync_enabled.is_(True),
        Channel.kind.in_(_delta_kinds())).distinct()))


def read_movements(client, products: dict[str, int],
                   notified: list[StockMovement] | None = None) -> HistoryRead | None:
    """Over HTTP, before any write: the movements the delta channels have not had yet, of those
    ``products`` (Smaregi id → product id) that have a delta listing; ``None`` when none has.

    ``notified``: the movements the notifications being applied name; they place a product that
    has no cursor yet (:func:`~stocklink.services.stock_history.read_history`)."""
    wanted = delta_product_ids(set(products.values()))
    if not wanted:
        return None
    return read_history(client, {sid: pid for sid, pid in products.items() if pid in wanted}, notified)


def forward(read: HistoryRead | None) -> Forwarded:
    """In the caller's write transaction: move the cursors over what :func:`read_movements` found
    and add each product's count to its listings on the delta channels. The caller commits."""
    deltas = apply_history(read) if read else {}
    if not deltas:
        return Forwarded()
    channel_ids = delta_channel_ids()
    add_pending_deltas(deltas, channel_ids)
    return Forwarded(deltas, channel_ids)


def add_pending_deltas(deltas: dict[int, int], channel_ids: set[int]) -> None:
    """Accumulate each product's increase / decrease count on its listings of ``channel_ids``,
    atomically in the database, for every product in one statement; the listings become dirty."""
    params = [{"pid": pid, "cid": cid, "delta": delta} for pid, delta in sorted(deltas.items()) if delta
              for cid in sorted(channel_ids)]
    if not params:
        return
    db.session.connection().execute(update(Listing.__table__)
                                    .where(Listing.product_id == bindparam("pid"),
                                           Listing.channel_id == bindparam("cid"), Listing.sync_enabled.is_(True))
                                    .values(pending_delta=Listing.pending_delta + bindparam("delta"), dirty=True,
                                            fact_at=utcnow()), params)
