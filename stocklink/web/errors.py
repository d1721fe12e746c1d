"""Errors (SPEC §6): latest first; delete one or all (seed 004)."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import delete, select

from stocklink.extensions import db
from stocklink.models import ErrorRecord

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
        from stocklink.errors import clear_error
        clear_error(record)
    flash(_("The error was deleted."), "info")
    return redirect(url_for("errors.index"), 303)


@bp.post("/delete-all")
def delete_all():
    from stocklink.errors import clear_error
    for record in db.session.scalars(select(ErrorRecord)).all():
        clear_error(record, commit=False)
    db.session.execute(delete(ErrorRecord))
    db.session.commit()
    flash(_("All errors were deleted."), "info")
    return redirect(url_for("errors.index"), 303)
