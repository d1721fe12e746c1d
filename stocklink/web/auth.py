"""Login and logout. Failed attempts are throttled per user name and client address
(:mod:`stocklink.web.login_throttle`); logout ends the session on the server too."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow
from stocklink.models.users import authenticate, end_sessions
from stocklink.web import login_throttle
from stocklink.web.params import safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """:raise 429: after too many failed attempts for this user name from this address (or from
        this address at all) within 15 minutes."""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if login_throttle.refused(username):
            return render_template("auth/login.html", error=_(
                "Too many failed attempts. Try again in 15 minutes."), username=username), 429
        user = authenticate(username, password)
        if user is None:
            login_throttle.count_failure(username)
            return render_template("auth/login.html", error=_("Wrong user name or password."),
                                   username=username), 401
        login_throttle.clear(username)
        user.last_login_at = utcnow()
        db.session.commit()
        login_user(user)
        return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html")


@bp.post("/logout")
def logout():
    """Ends this operator's sessions on the server, so a copy of the cookie is worthless."""
    if current_user.is_authenticated:
        end_sessions(current_user.id)
    logout_user()
    flash(_("You have logged out."), "info")
    return redirect(url_for("auth.login"))
