"""Flask-Babel: Japanese by default, English complete, chosen per browser session."""
from __future__ import annotations

import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import has_request_context, request, session
from flask_babel import get_locale

from stocklink.infra.extensions import babel

LANGUAGES = ("ja", "en")
TRANSLATIONS = Path(__file__).parent.parent / "translations"


def select_locale() -> str:
    """The session's language; jobs (no request) render in Japanese."""
    if not has_request_context():
        return "ja"
    lang = session.get("lang")
    return lang if lang in LANGUAGES else "ja"


def compile_catalogs() -> None:
    """Compile each ``messages.po`` whose ``.mo`` is missing or older (the .mo is not committed)."""
    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        tmp = mo.with_suffix(f".mo.{os.getpid()}")
        with tmp.open("wb") as fh:
            write_mo(fh, catalog)
        os.replace(tmp, mo)


def init_app(app) -> None:
    compile_catalogs()
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def inject_locale():
        path = request.path if has_request_context() else "/"
        return {"current_locale": str(get_locale()), "languages": LANGUAGES, "request_path": path}
