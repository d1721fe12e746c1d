"""Operator login: every console page requires it; the webhook and /healthz do not.

Login is the default: :func:`require_login` runs before every request and lets through only
the endpoints in :data:`PUBLIC_ENDPOINTS`, so a new page cannot be left open by mistake.
Logout ends the session on the server too: a cookie copied before it opens nothing after.
"""
from __future__ import annotations

from flask import redirect, request, url_for
from flask_login import current_user

from stocklink.infra.extensions import login_manager
from stocklink.models.users import load_session_user
from stocklink.web.fragments import wants_fragment

PUBLIC_ENDPOINTS = {"auth.login", "health.healthz", "static", "i18n.switch"}
PUBLIC_BLUEPRINTS = {"webhooks"}


@login_manager.user_loader
def load_user(session_id: str):
    """None (log in again) once that session has ended: see :mod:`stocklink.models.users`."""
    return load_session_user(session_id)


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"

    @app.before_request
    def require_login():
        if request.endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS:
            return None
        if request.endpoint is None:  # 404: let Flask answer it
            return None
        if current_user.is_authenticated:
            return None
        target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
        if wants_fragment():
            # htmx ignores 3xx for navigation: tell it where to go on a 200 (STYLE.md). Not on a
            # history restore: htmx swaps that answer into <body> unread, so it gets the redirect.
            return "", 200, {"HX-Redirect": target}
        return redirect(target)
