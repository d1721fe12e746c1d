"""Reconciliation jobs (SPEC §10, §11.10): reading each channel back on a budget, healing old
differences where the channel's setting says so, and the stale-sync warning.

The logic is in :mod:`stocklink.services.read_back` and :mod:`stocklink.services.stale_sync`;
these jobs take the lease, build the client, and enqueue the pushes that follow.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.infra.leases import lease
from stocklink.infra.queues import MAINTENANCE, get_queue, get_redis
from stocklink.jobs import job
from stocklink.jobs.orders import enqueue_poll
from stocklink.jobs.push import enqueue_push, stop_for_auth
from stocklink.models import Channel
from stocklink.models._types import as_utc, utcnow
from stocklink.platforms.base import AuthError
from stocklink.services import differences
from stocklink.services.channel_clients import make_channel_client
from stocklink.services.read_back import differences_to_heal, read_back_channel
from stocklink.services.stale_sync import alert_stale_channels

log = logging.getLogger(__name__)

# One read-back of a channel at a time (a slow run must not be joined by the next one). It is not
# the push's lock: a push never waits for a read (services/read_back.py says how they stay apart).
LOCK_KEY = "stocklink:read-back-lock:{}"


def _active_channel_ids() -> list[int]:
    return list(db.session.scalars(select(Channel.id).where(
        Channel.enabled.is_(True), Channel.state == "active").order_by(Channel.id)))


@job
def read_back_channels() -> int:
    """Cron: enqueue one :func:`read_back` per active channel; returns how many."""
    channel_ids = _active_channel_ids()
    for channel_id in channel_ids:
        get_queue(MAINTENANCE).enqueue(read_back, channel_id, job_timeout=120, result_ttl=0,
                                       failure_ttl=86400)
    return len(channel_ids)


@job
def read_back(channel_id: int) -> str:
    """Heal this channel's differences that are older than its heal-after setting, then read back
    one budget's worth of its listings. A channel that refuses its credentials stops (level 9);
    any other platform error fails the job (kept in RQ's failed registry) and the next run
    tries again — a channel that stays unreachable is what the stale-sync warning is for."""
    with lease(get_redis(), LOCK_KEY.format(channel_id), name=f"read-back of channel {channel_id}") as held:
        return _read_back_locked(channel_id) if held else "busy"


def _read_back_locked(channel_id: int) -> str:
    channel = db.session.get(Channel, channel_id)
    if channel is None:
        return "no such channel"
    if not channel.enabled or channel.state != "active":
        return f"skipped: {channel.state}"
    healed = heal_differences(channel)
    try:
        run = read_back_channel(channel, make_channel_client(channel))
    except AuthError as exc:
        return stop_for_auth(channel_id, exc)
    if run.differing and _orders_older_than(channel_id, POLL_AFTER_DIFFERENCE):
        # A channel lower than stocklink expects may have sold what stocklink has not heard of:
        # its orders are read now (SPEC §11.6), unless they were read a moment ago (a poll reads
        # every recent order: on Shopify that costs a good part of the request budget).
        enqueue_poll(channel_id)
    return f"read {run.read}, {len(run.differing)} differ, healed {healed}"


POLL_AFTER_DIFFERENCE = timedelta(seconds=30)


def _orders_older_than(channel_id: int, age: timedelta) -> bool:
    channel = db.session.get(Channel, channel_id)
    return channel is not None and (channel.orders_polled_at is None
                                    or utcnow() - as_utc(channel.orders_polled_at) >= age)


def heal_differences(channel: Channel) -> int:
    """Reflect (反映) the channel's differences older than its heal-after setting and push them."""
    ids = differences_to_heal(channel, utcnow())
    if not ids:
        return 0
    channel_ids = differences.reflect(ids)
    db.session.commit()
    log.info("%s: healed %d difference(s) after %d minutes", channel.name, len(ids), channel.heal_after_minutes)
    for other in sorted(channel_ids):
        enqueue_push(other)
    return len(ids)


@job
def check_stale_sync() -> str:
    """Cron: mail each channel whose sync went stale (once per episode), end recovered episodes."""
    alerted, recovered = alert_stale_channels()
    db.session.commit()
    return f"alerted {len(alerted)}, recovered {len(recovered)}"
