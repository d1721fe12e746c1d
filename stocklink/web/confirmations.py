"""確認が必要な商品: release (optionally adjusting the channel stock) or exclude (seed 000).

One URL serves the page and, for an htmx swap, the ``_rows.html`` fragment; actions answer
with the fresh rows and ``HX-Trigger: review-changed``, on which the queue badge in the nav
(:func:`badge`) and the dashboard's counts fetch themselves again.
"""
from __future__ import annotations

import json

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.jobs.inbox import enqueue_refresh
from stocklink.models import ConfirmationItem
from stocklink.services.unlinkable import exclude_items, release_items
from stocklink.web.fragments import page_or_fragment, wants_fragment
from stocklink.web.params import form_ids

bp = Blueprint("confirmations", __name__, url_prefix="/confirmations")


def _items():
    return db.session.scalars(select(ConfirmationItem).order_by(ConfirmationItem.last_seen_at.desc())).all()


def queue_size() -> int:
    """How many products wait in the queue: the nav badge and the dashboard show this number."""
    return db.session.scalar(select(func.count(ConfirmationItem.id))) or 0


@bp.app_context_processor
def inject_queue_size():
    # A callable, so only pages that show the badge (base.html, logged in) run the query.
    return {"queue_size": queue_size}


def _render(message: str | None = None, level: str = "info"):
    """An htmx button press gets the fresh rows and ``review-changed``; a plain form post
    (no JavaScript) is sent back to the page with the message flashed."""
    if wants_fragment():
        response = page_or_fragment("confirmations/index.html", "confirmations/_rows.html", items=_items(),
                                    message=message, level=level)
        trigger = {"review-changed": {"message": message or ""}}
        response.headers["HX-Trigger"] = json.dumps(trigger, ensure_ascii=True)
        return response
    if message:
        flash(message, level)
    return redirect(url_for("confirmations.index"), 303)


def _selected() -> list[ConfirmationItem]:
    ids = form_ids()
    if not ids:
        return []
    return db.session.scalars(select(ConfirmationItem).where(ConfirmationItem.id.in_(ids))).all()


@bp.get("/")
def index():
    return page_or_fragment("confirmations/index.html", "confirmations/_rows.html", items=_items())


@bp.get("/badge")
def badge():
    """The nav badge alone: it asks for itself again on ``review-changed``."""
    return render_template("confirmations/_badge.html")


@bp.post("/release")
def release():
    items = _selected()
    if not items:
        return _render(_("Select at least one product."), "warning")
    adjust = request.form.get("adjust") == "1"
    released, blocked = release_items(items, adjust=adjust)
    if adjust and released:
        enqueue_refresh(released)
    message = ngettext("%(num)d product released.", "%(num)d products released.", len(released))
    if blocked:
        message += " " + _("Still not linkable, kept in the queue: %(ids)s", ids=", ".join(blocked))
    return _render(message, "warning" if blocked else "info")


@bp.post("/exclude")
def exclude():
    items = _selected()
    if not items:
        return _render(_("Select at least one product."), "warning")
    count = exclude_items(items)
    return _render(ngettext("%(num)d product excluded from sync.", "%(num)d products excluded from sync.",
                            count))
