"""商品取り込み: import Smaregi's catalogue and each channel's, and watch the import run.

A long import runs as a job; its row (keyed by the RQ job id) is rendered by one fragment,
``_status.html``, that polls itself only while the import waits or runs (Contact.app's archive
widget): the merchant can leave the page and come back.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.jobs.catalogue_import import latest, settle, start_import
from stocklink.models import CatalogueImport, Channel, Listing, Product
from stocklink.platforms.registry import PLATFORMS
from stocklink.web.fragments import page_or_fragment, wants_fragment

bp = Blueprint("catalogue", __name__, url_prefix="/catalogue")


def _channel_counts() -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {}
    rows = db.session.execute(
        select(Listing.channel_id, Listing.product_id.is_not(None), Listing.link_problem.is_not(None), func.count())
        .where(Listing.removed_at.is_(None))
        .group_by(Listing.channel_id, Listing.product_id.is_not(None), Listing.link_problem.is_not(None)))
    for channel_id, linked, problem, n in rows:
        entry = counts.setdefault(channel_id, {"all": 0, "linked": 0, "problems": 0})
        entry["all"] += n
        entry["linked"] += n if linked else 0
        entry["problems"] += n if problem else 0
    return counts


def _product_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Product).where(Product.removed_at.is_(None)))


@bp.get("/")
def index():
    channels = db.session.scalars(select(Channel).order_by(Channel.id)).all()
    importable = {c.id for c in channels if hasattr(PLATFORMS[c.kind].client, "list_catalogue")} \
        if channels else set()
    return render_template(
        "catalogue/index.html", channels=channels, importable=importable,
        smaregi_import=latest("smaregi"), imports={c.id: latest("channel", c.id) for c in channels},
        products=_product_count(),
        counts=_channel_counts())


@bp.post("/import/smaregi")
def import_smaregi():
    _row, new = start_import("smaregi", requested_by=current_user.username)
    flash(_("Import of the Smaregi catalogue started.") if new
          else _("An import of this catalogue is already running."), "info")
    return redirect(url_for("catalogue.index"), 303)


@bp.post("/import/channel/<int:channel_id>")
def import_channel(channel_id: int):
    """:raise 404: no such channel."""
    channel = db.session.get(Channel, channel_id) or abort(404)
    _row, new = start_import("channel", channel, requested_by=current_user.username)
    flash(_("Import of %(name)s started.", name=channel.name) if new
          else _("An import of this catalogue is already running."), "info")
    return redirect(url_for("catalogue.index"), 303)


@bp.get("/imports/<job_id>")
def status(job_id: str):
    """The import's status; an htmx poll gets the fragment alone.

    :raise 404: no such import."""
    row = settle(db.session.get(CatalogueImport, job_id) or abort(404))
    context: dict = {"row": row, "oob": wants_fragment() and row.state not in ("queued", "running")}
    if context["oob"]:
        context["products"] = _product_count()
        context["channel"] = row.channel
        context["c"] = _channel_counts().get(row.channel_id, {"all": 0, "linked": 0, "problems": 0})
    return page_or_fragment("catalogue/status.html", "catalogue/_status.html", **context)
