"""Order webhooks from the channels, stored before they are answered (SPEC §11.1, as Smaregi's
notifications are): one row per delivery, unique per channel on the platform's delivery id.

A stored webhook is a trigger: the order it names is read from the channel's API at once
(:func:`stocklink.jobs.orders.take_webhooks`; a channel that cannot read one order is polled), so
an order heard of by webhook and by the poll is read the same way and is one order.
:func:`mark_taken` closes the rows whose orders were read, :func:`mark_processed` those a
complete poll has covered; the poll sweep polls a channel whose webhooks stay open (a job lost
with Redis, the channel unreachable)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from stocklink.infra.extensions import db, insert_for
from stocklink.models import Channel, ChannelWebhook
from stocklink.models._types import utcnow
from stocklink.platforms.interfaces import WebhookDelivery


def store(channel: Channel, delivery: WebhookDelivery, body: bytes) -> bool:
    """Store one delivery (commits); False when this delivery id was stored already."""
    insert = insert_for(db.engine.dialect.name)
    # RETURNING says whether this call inserted the row (an INSERT's rowcount is not reliable
    # across drivers: psycopg answers -1 here).
    new_id = db.session.execute(insert(ChannelWebhook).values(
        channel_id=channel.id, topic=delivery.topic, delivery_id=delivery.delivery_id,
        order_id=(delivery.order_id or "")[:100] or None, body=body.decode("utf-8", "replace"),
        received_at=utcnow()).on_conflict_do_nothing(index_elements=["channel_id", "delivery_id"])
        .returning(ChannelWebhook.id)).scalar()
    db.session.commit()
    return new_id is not None


def mark_processed(channel_id: int, polled_from: datetime) -> int:
    """The channel's webhooks received before a complete poll began are covered by it."""
    done = db.session.execute(update(ChannelWebhook).where(
        ChannelWebhook.channel_id == channel_id, ChannelWebhook.processed_at.is_(None),
        ChannelWebhook.received_at <= polled_from).values(processed_at=utcnow())
        .execution_options(synchronize_session=False))
    return done.rowcount


def channels_waiting(older_than: datetime) -> list[int]:
    """Channels with a webhook still open that arrived before ``older_than``."""
    return list(db.session.scalars(select(ChannelWebhook.channel_id).where(
        ChannelWebhook.processed_at.is_(None), ChannelWebhook.received_at <= older_than).distinct()))


def open_deliveries(channel_id: int) -> list[ChannelWebhook]:
    """The channel's webhooks not yet taken in, oldest first."""
    return list(db.session.scalars(select(ChannelWebhook).where(
        ChannelWebhook.channel_id == channel_id, ChannelWebhook.processed_at.is_(None)).order_by(ChannelWebhook.id)))


def mark_taken(webhook_ids: list[int]) -> None:
    """These deliveries' orders were read and taken in."""
    if webhook_ids:
        db.session.execute(update(ChannelWebhook).where(ChannelWebhook.id.in_(webhook_ids),
                                                        ChannelWebhook.processed_at.is_(None))
                           .values(processed_at=utcnow()).execution_options(synchronize_session=False))
