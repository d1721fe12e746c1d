"""Outbox: every notification, sent or not (SPEC §7)."""
from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import gettext as _
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import OutboxMessage

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


def _labels() -> dict:
    """A message's status as the merchant reads it, in the request's language."""
    return {"pending": _("Sending"), "sent": _("Sent"), "failed": _("Failed"), "off": _("Switched off"),
            "no_recipient": _("No recipient")}


def _kinds() -> dict:
    """A message's kind as the merchant reads it (the names of Settings → Notifications)."""
    return {"unlinkable": _("Unlinkable products"), "level9": _("Level 9: sync stopped"),
            "level8": _("Level 8: retrying"), "report": _("Per-run reports"), "low_stock": _("Low stock")}


@bp.get("/")
def index():
    messages = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(300)).all()
    return render_template("outbox/index.html", messages=messages, labels=_labels(), kinds=_kinds())


@bp.get("/<int:message_id>")
def show(message_id: int):
    """:raise 404: no such message."""
    message = db.session.get(OutboxMessage, message_id) or abort(404)
    return render_template("outbox/show.html", message=message, labels=_labels())
