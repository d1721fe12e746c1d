"""Background jobs: module-level functions named as verbs, taking ids.

Each runs inside an app context of its own (:func:`job`), so its database session is
fresh and removed when it ends. Workers are started by ``flask worker`` so the app is
imported once before RQ forks.
"""
from __future__ import annotations

import functools

from flask import Flask, has_app_context

_app: Flask | None = None


def set_app(app: Flask) -> None:
    """Tell the jobs which app to run in (the worker CLI and the tests call this)."""
    global _app
    _app = app


def get_app() -> Flask:
    global _app
    if _app is None:
        # Here, not at the top: the jobs sit below the app factory (pyproject.toml's layers
        # contract ignores this one import). Only a worker started without `flask worker` gets here.
        from stocklink import create_app
        _app = create_app()
    return _app


def job(func):
    """Run ``func`` in its own app context (a fresh database session)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context() and _app is None:
            return func(*args, **kwargs)
        with get_app().app_context():
            return func(*args, **kwargs)

    return wrapper
