"""The stale-sync warning: a channel that has work waiting and has not read or written successfully
for longer than the merchant's threshold (SPEC §11.10). Sync that silently stops is the most common
complaint about comparable tools (field research B7), so it is shown on the dashboard and mailed
once per episode; it clears by itself when the channel recovers.

A stopped channel (level 9) is left out: its stop is already shown in red and mailed (SPEC §6).
A channel switched off by the merchant is left out too.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select

from stocklink.domain.read_back import is_stale
from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, WriteIntent
from stocklink.models._types import as_utc, utcnow
from stocklink.services import merchant_settings
from stocklink.services.outbox import queue_mail

THRESHOLD_SETTING = "sync.stale_after_minutes"


@dataclass(frozen=True)
class StaleChannel:
    """One warning: the channel, its last successful read or write (``None``: never), and how many
    listings wait for it."""

    channel_id: int
    name: str
    last_success: datetime | None
    waiting: int


def threshold() -> timedelta:
    return timedelta(minutes=merchant_settings.get(THRESHOLD_SETTING))


def waiting_work() -> dict[int, int]:
    """Per channel id, the listings with work waiting: dirty, deltas not uploaded, an upload
    pending, or a write in flight (an open write intent)."""
    listings = dict(db.session.execute(select(Listing.channel_id, func.count(Listing.id)).where(
        Listing.sync_enabled.is_(True), Listing.link_problem.is_(None),
        or_(Listing.dirty.is_(True), Listing.pending_delta != 0, Listing.pending_ref.is_not(None)))
        .group_by(Listing.channel_id)).all())
    intents = db.session.execute(select(WriteIntent.channel_id, func.count(WriteIntent.id)).where(
        WriteIntent.status == "open").group_by(WriteIntent.channel_id)).all()
    for channel_id, count in intents:
        listings[channel_id] = listings.get(channel_id, 0) + count
    return listings


def stale_channels(now: datetime | None = None) -> list[StaleChannel]:
    """The channels to warn about now, by id (what ``dashboard/_stale.html`` shows)."""
    now = now or utcnow()
    waiting = waiting_work()
    limit = threshold()
    stale = []
    for channel in db.session.scalars(select(Channel).where(
            Channel.enabled.is_(True), Channel.state == "active").order_by(Channel.id)):
        last_read, last_write = as_utc(channel.last_read_back_at), as_utc(channel.last_sync_at)
        if is_stale(last_read, last_write, as_utc(channel.created_at), now, limit,
                    work_waiting=waiting.get(channel.id, 0) > 0):
            latest = max((t for t in (last_read, last_write) if t is not None), default=None)
            stale.append(StaleChannel(channel.id, channel.name, latest, waiting[channel.id]))
    return stale


def alert_stale_channels(now: datetime | None = None) -> tuple[list[int], list[int]]:
    """Mail once per episode for each channel that went stale (``Channel.stale_alerted_at``), and
    end the episode of each channel that is no longer stale. Returns (alerted ids, recovered
    ids); the caller commits (the mail is sent once the commit is done)."""
    now = now or utcnow()
    stale = {s.channel_id: s for s in stale_channels(now)}
    alerted, recovered = [], []
    for channel in db.session.scalars(select(Channel).order_by(Channel.id)):
        warning = stale.get(channel.id)
        if warning is None:
            if channel.stale_alerted_at is not None:
                channel.stale_alerted_at = None
                recovered.append(channel.id)
            continue
        if channel.stale_alerted_at is not None:
            continue
        channel.stale_alerted_at = now
        queue_mail("stale", _l("[stocklink] %(name)s has not synced for over %(minutes)s minutes",
                               name=channel.name, minutes=merchant_settings.get(THRESHOLD_SETTING)),
                   "stale_sync", channel=channel, last_success=warning.last_success, waiting=warning.waiting,
                   minutes=merchant_settings.get(THRESHOLD_SETTING))
        alerted.append(channel.id)
    return alerted, recovered
