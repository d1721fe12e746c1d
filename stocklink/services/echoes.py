"""The stock movements stocklink's own registrations of web orders cause in Smaregi, expected
before each registration is sent, so the delta channels (NextEngine) never get those units twice:
they had them when the order was reserved (SPEC §5; seed 001 §6 for shipments, and in
transaction mode too, where the movement looks like a POS sale).

:func:`expect` is called before a registration or a cancellation is sent (in the commit that
precedes the request), :func:`forget` when it is known never to have reached Smaregi;
:func:`consume` runs where the history entries become deltas
(:func:`stocklink.services.stock_history.apply_history`), in that transaction.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from stocklink.domain.delta import HistoryEntry, without_echoes
from stocklink.infra.extensions import db
from stocklink.models import ExpectedEcho
from stocklink.models._types import utcnow

# An expectation not matched within this long is left alone: the movement it waited for is
# either forwarded already or will never come, and a later movement must not be taken for it.
EXPECT_FOR = timedelta(hours=1)


def expect(registration_id: int, amounts: dict[int, int]) -> None:
    """Expect, once per registration, a movement of ``amounts[product id]`` for each product (a
    sale negative, a cancellation positive). A registration sent again expects nothing more."""
    if not amounts or db.session.scalar(select(ExpectedEcho.id).where(
            ExpectedEcho.registration_id == registration_id).limit(1)) is not None:
        return
    now = utcnow()
    db.session.add_all([ExpectedEcho(registration_id=registration_id, product_id=pid, amount=amount, created_at=now)
                        for pid, amount in sorted(amounts.items()) if amount])


def forget(registration_id: int) -> None:
    """The registration never reached Smaregi: its movements will not come."""
    db.session.execute(delete(ExpectedEcho).where(ExpectedEcho.registration_id == registration_id,
                                                  ExpectedEcho.consumed_at.is_(None)))


def consume(product_id: int, entries: list[HistoryEntry], after: int) -> list[HistoryEntry]:
    """The product's entries after ``after`` less those stocklink's registrations caused; the
    expectations they matched are marked, in the caller's transaction (rows locked)."""
    expected = db.session.execute(select(ExpectedEcho.id, ExpectedEcho.amount).where(
        ExpectedEcho.product_id == product_id, ExpectedEcho.consumed_at.is_(None),
        ExpectedEcho.created_at >= utcnow() - EXPECT_FOR).order_by(ExpectedEcho.id).with_for_update()).all()
    kept, matched = without_echoes(entries, after, [(row.id, row.amount) for row in expected])
    if matched:
        db.session.execute(update(ExpectedEcho).where(ExpectedEcho.id.in_(matched))
                           .values(consumed_at=utcnow()).execution_options(synchronize_session=False))
    return kept
