"""Language switch (ja / en), kept in the session."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, request, session, url_for

from stocklink.infra.i18n import LANGUAGES

bp = Blueprint("i18n", __name__)


@bp.post("/language")
def switch():
    lang = request.form.get("lang", "ja")
    if lang in LANGUAGES:
        session["lang"] = lang
    target = request.form.get("next") or ""
    if urlsplit(target).netloc or not target.startswith("/") or target.startswith("//"):
        target = url_for("dashboard.index")
    return redirect(target)
