"""Run something (enqueue a job) only once the current transaction has committed, so a
worker never picks up work whose rows it cannot see yet, and a rollback enqueues nothing."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event

from stocklink.infra.extensions import db


def after_commit(action: Callable[[], None]) -> None:
    session = db.session()

    def run(_session):
        action()

    def drop(_session):
        if event.contains(session, "after_commit", run):
            event.remove(session, "after_commit", run)

    event.listen(session, "after_commit", run, once=True)
    event.listen(session, "after_rollback", drop, once=True)
