"""Login and logout. Attempts are throttled per client address in Redis."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from stocklink.extensions import db
from stocklink.models._types import utcnow
from stocklink.models.users import User, end_sessions
from stocklink.queues import get_redis

bp = Blueprint("auth", __name__)
WINDOW_S = 15 * 60


def _throttle_key() -> str:
    return f"stocklink:login-attempts:{request.remote_addr}"


def _too_many_attempts(limit: int) -> bool:
    return int(get_redis().get(_throttle_key()) or 0) >= limit


def _count_failure() -> None:
    redis = get_redis()
    pipe = redis.pipeline()
    pipe.incr(_throttle_key())
    pipe.expire(_throttle_key(), WINDOW_S)
    pipe.execute()


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the dashboard."""
    if not target or urlsplit(target).netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """:raise 429: after too many failed attempts from one address within 15 minutes."""
    if request.method == "POST":
        if _too_many_attempts(current_limit()):
            return render_template("auth/login.html", error=_(
                "Too many failed attempts. Try again in 15 minutes.")), 429
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        user = db.session.query(User).filter_by(username=username).first()
        if user is None or not user.check_password(password):
            _count_failure()
            return render_template("auth/login.html", error=_("Wrong user name or password."),
                                   username=username), 401
        get_redis().delete(_throttle_key())
        user.last_login_at = utcnow()
        db.session.commit()
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html")


def current_limit() -> int:
    from flask import current_app
    return current_app.config["LOGIN_ATTEMPTS_PER_15_MIN"]


@bp.post("/logout")
def logout():
    """Ends this operator's sessions on the server, so a copy of the cookie is worthless."""
    if current_user.is_authenticated:
        end_sessions(current_user.id)
    logout_user()
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))
