"""在庫連携対象外アイテム: excluded products are skipped silently; remove to sync again."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import ngettext
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Exclusion
from stocklink.services.unlinkable import remove_exclusions
from stocklink.web.params import form_ids

bp = Blueprint("exclusions", __name__, url_prefix="/exclusions")


@bp.get("/")
def index():
    exclusions = db.session.scalars(select(Exclusion).order_by(Exclusion.created_at.desc())).all()
    return render_template("exclusions/index.html", exclusions=exclusions)


@bp.post("/remove")
def remove():
    ids = form_ids()
    rows = db.session.scalars(select(Exclusion).where(Exclusion.id.in_(ids))).all() if ids else []
    count = remove_exclusions(rows)
    flash(ngettext("%(num)d product removed from the exclusion list.",
                   "%(num)d products removed from the exclusion list.", count), "info")
    return redirect(url_for("exclusions.index"), 303)
