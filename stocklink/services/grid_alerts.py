"""What the grid shows above its rows (seed 004 ■エラーメッセージ): channel errors and link problems.

Seed 004: "正常に在庫連携されない場合、または複数商品が紐づいている場合、メッセージが表示されます".
Channel errors are the open :class:`~stocklink.models.ErrorRecord` rows the errors screen lists
(latest first); link problems are listings whose ``link_problem`` is set (``multiple``: 複数の
商品が紐づいています, SPEC §6 — that product is not pushed to that channel until fixed), counted
per channel and kind, so the web layer can link each to the grid filtered to those products.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.models import Channel, ErrorRecord, Listing

SHOWN_ERRORS = 5


@dataclass(frozen=True)
class LinkProblem:
    channel_id: int
    channel_name: str
    problem: str  # multiple | unknown_item | … (Listing.link_problem)
    listings: int


@dataclass(frozen=True)
class GridAlerts:
    errors: list[ErrorRecord]
    more_errors: int
    link_problems: list[LinkProblem]

    def __bool__(self) -> bool:
        return bool(self.errors or self.link_problems)


def grid_alerts() -> GridAlerts:
    """Open errors (the latest :data:`SHOWN_ERRORS`, and how many more) and link problems: at most four queries."""
    open_errors = ErrorRecord.resolved_at.is_(None)
    errors = list(db.session.scalars(select(ErrorRecord).where(open_errors)
                                     .order_by(ErrorRecord.last_seen_at.desc()).limit(SHOWN_ERRORS)))
    more = 0
    if len(errors) == SHOWN_ERRORS:
        more = (db.session.scalar(select(func.count(ErrorRecord.id)).where(open_errors)) or 0) - SHOWN_ERRORS
    # Grouped on the listings alone (the partial index of 0010 answers it); the names come after.
    counts = db.session.execute(select(Listing.channel_id, Listing.link_problem, func.count())
                                .where(Listing.link_problem.is_not(None))
                                .group_by(Listing.channel_id, Listing.link_problem)
                                .order_by(Listing.channel_id, Listing.link_problem)).all()
    names = {cid: name for cid, name in db.session.execute(select(Channel.id, Channel.name).where(
        Channel.id.in_({channel_id for channel_id, _p, _n in counts})))} if counts else {}
    problems = [LinkProblem(channel_id, names.get(channel_id, ""), problem, n) for channel_id, problem, n in counts]
    return GridAlerts(errors, more, problems)
