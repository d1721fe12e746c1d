"""Language switch (ja / en), kept in the session."""
from __future__ import annotations

from flask import Blueprint, redirect, request, session

from stocklink.infra.i18n import LANGUAGES
from stocklink.web.params import safe_next

bp = Blueprint("i18n", __name__)


@bp.post("/language")
def switch():
    lang = request.form.get("lang", "ja")
    if lang in LANGUAGES:
        session["lang"] = lang
    return redirect(safe_next(request.form.get("next")))
