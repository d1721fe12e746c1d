"""Outbox: every notification, sent or not (SPEC §7)."""
from __future__ import annotations

from flask import Blueprint, abort, render_template
from sqlalchemy import select

from stocklink.extensions import db
from stocklink.models import OutboxMessage

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.get("/")
def index():
    messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(300)).all()
    return render_template("outbox/index.html", messages=messages)


@bp.get("/<int:message_id>")
def show(message_id: int):
    """:raise 404: no such message."""
    message = db.session.get(OutboxMessage, message_id) or abort(404)
    return render_template("outbox/show.html", message=message)
