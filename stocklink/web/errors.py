"""Errors (SPEC §6): latest first; delete one or all (seed 004)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import delete, select

from stocklink.infra.extensions import db
from stocklink.jobs.push import enqueue_push
from stocklink.models import ErrorRecord
from stocklink.services.incidents import clear_error

bp = Blueprint("errors", __name__, url_prefix="/errors")


@bp.get("/")
def index():
    records = db.session.scalars(select(ErrorRecord).order_by(ErrorRecord.last_seen_at.desc())
                                 .limit(500)).all()
    return render_template("errors/index.html", records=records)


@bp.post("/<int:error_id>/delete")
def delete_one(error_id: int):
    record = db.session.get(ErrorRecord, error_id)
    if record is not None:
        resumed = clear_error(record)
        if resumed is not None:
            enqueue_push(resumed)
    flash(_("The error was deleted."), "info")
    return redirect(url_for("errors.index"), 303)


@bp.post("/delete-all")
def delete_all():
    resumed = {clear_error(record, commit=False) for record in db.session.scalars(select(ErrorRecord)).all()}
    db.session.execute(delete(ErrorRecord))
    db.session.commit()
    for channel_id in sorted(resumed - {None}):
        enqueue_push(channel_id)
    flash(_("All errors were deleted."), "info")
    return redirect(url_for("errors.index"), 303)
