"""Storing a notification durably, once (SPEC §11.1: inbox first)."""
from __future__ import annotations

from sqlalchemy import bindparam, select, update

from stocklink.infra.extensions import db, insert_for
from stocklink.models import SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.platforms.smaregi.webhook import Notification

_COLUMNS = ("dedupe_key", "generation", "event", "payload", "status", "received_at", "attempts")
_INSERTS: dict = {}


def _insert_statement(dialect: str):
    """``INSERT … ON CONFLICT (dedupe_key) DO NOTHING RETURNING id``, built once per dialect:
    the webhook runs it on every request, and building a statement is not free."""
    statement = _INSERTS.get(dialect)
    if statement is None:
        table = SmaregiInbox.__table__
        insert = insert_for(dialect)
        statement = (insert(table).values({name: bindparam(name, type_=table.c[name].type) for name in _COLUMNS})
                     .on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(table.c.id))
        _INSERTS[dialect] = statement
    return statement


def store_notification(notification: Notification) -> tuple[int, bool]:
    """``INSERT … ON CONFLICT DO NOTHING`` on the dedupe key and commit.

    Returns (inbox row id, whether the row now waits for a drain because of this call: created,
    or a legacy duplicate sent back to be drained again, see :func:`_drain_again`). A
    notification without stock movements is stored as ``ignored`` so it is visible but never
    processed.
    """
    status = "received" if notification.movements else "ignored"
    # One statement in autocommit: the INSERT is its own transaction, committed (durably: SQLite
    # synchronous=FULL, PostgreSQL synchronous_commit) before it returns. On PostgreSQL that is
    # one round trip instead of three (BEGIN, INSERT, COMMIT), each a wait for the server process
    # on a busy host; the connection's isolation level is restored when it goes back to the pool.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        new_id = connection.execute(_insert_statement(connection.dialect.name), {
            "dedupe_key": notification.dedupe_key, "generation": notification.generation,
            "event": notification.event, "payload": notification.payload, "status": status,
            "received_at": utcnow(), "attempts": 0}).scalar()
    if new_id is not None:
        return new_id, status == "received"
    existing = db.session.scalar(select(SmaregiInbox.id).where(
        SmaregiInbox.dedupe_key == notification.dedupe_key))
    return existing, _drain_again(notification)


def _drain_again(notification: Notification) -> bool:
    """A legacy notification identical to one already applied may be a new movement, not a
    resend: a sale, a return and a sale of one product in one second are notified in
    byte-identical bodies. Its row is drained once more; that is harmless (the stock is read
    again and overwritten, the delta channels get only 在庫変動履歴 entries after the cursor, see
    :mod:`stocklink.services.stock_history`) and forwards the movement within seconds instead of at the
    next backfill. A row still waiting or held by a drain is left as it is; so are Platform
    duplicates (one ``Smaregi-Event-Id``, the same entries)."""
    if notification.generation != "legacy" or not notification.movements:
        return False
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return bool(connection.execute(update(SmaregiInbox).where(
            SmaregiInbox.dedupe_key == notification.dedupe_key, SmaregiInbox.status == "done")
            .values(status="received", processed_at=None)).rowcount)


def already_stored(notification: Notification) -> bool:
    return db.session.scalar(select(SmaregiInbox.id).where(
        SmaregiInbox.dedupe_key == notification.dedupe_key)) is not None
