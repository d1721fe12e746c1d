"""Storing a notification durably, once (SPEC §11.1: inbox first)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from stocklink.extensions import db
from stocklink.models import SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.platforms.smaregi_webhook import Notification


def store_notification(notification: Notification) -> tuple[int, bool]:
    """``INSERT … ON CONFLICT DO NOTHING`` on the dedupe key and commit.

    Returns (inbox row id, whether this call created it). A notification without stock
    movements is stored as ``ignored`` so it is visible but never processed.
    """
    dialect = db.engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    status = "received" if notification.movements else "ignored"
    stmt = insert(SmaregiInbox).values(
        dedupe_key=notification.dedupe_key, generation=notification.generation, event=notification.event,
        payload=notification.payload, status=status, received_at=utcnow(), attempts=0,
    ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(SmaregiInbox.id)
    new_id = db.session.execute(stmt).scalar()
    db.session.commit()
    if new_id is not None:
        return new_id, status == "received"
    existing = db.session.scalar(select(SmaregiInbox.id).where(
        SmaregiInbox.dedupe_key == notification.dedupe_key))
    return existing, False


def already_stored(notification: Notification) -> bool:
    return db.session.scalar(select(SmaregiInbox.id).where(
        SmaregiInbox.dedupe_key == notification.dedupe_key)) is not None
