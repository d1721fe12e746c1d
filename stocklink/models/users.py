"""Operators who log in to the console.

The session cookie is signed but kept by the browser, so ending a session has to happen
here: the id a cookie carries is ``"<user id>:<session generation>"``
and only the current generation opens a page. Logout and a new password move the generation
on, which ends every session of that operator (every browser), not only the one that asked.

:func:`authenticate` checks one password hash whether or not the user name exists, so the
time of a refusal does not tell an attacker which names are operators.
"""
from __future__ import annotations

from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow

# The hash of a random password nobody kept, in generate_password_hash's own format and cost:
# checking a password against it takes as long as checking one against an operator's hash.
# A constant, so no process pays (and no first request shows) the cost of making one.
DUMMY_PASSWORD_HASH = ("scrypt:32768:8:1$UBx25AcICwTrb8wL$a83caee94ea5a1ba86b29787f68c54b00e0c0fd175b7018f9ff2dbc"
                       "92495810f5e0e065c512e6f17d95caf41591ae6620a0709a7bc905f3856567afa8b2b1160")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(80), unique=True, nullable=False)
    password_hash = db.Column(db.String(255), nullable=False)
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    last_login_at = db.Column(db.DateTime(timezone=True))
    session_generation = db.Column(db.Integer, nullable=False, default=0, server_default="0")

    def set_password(self, password: str) -> None:
        """A new password also ends the sessions opened with the old one."""
        self.password_hash = generate_password_hash(password)
        self.session_generation = (self.session_generation or 0) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """What Flask-Login keeps in the session cookie (see the module docstring)."""
        return f"{self.id}:{self.session_generation}"


def authenticate(username: str, password: str) -> User | None:
    """The operator, if ``password`` is theirs; one hash check either way (see the docstring)."""
    user = db.session.scalars(db.select(User).where(User.username == username)).first()
    if user is None:
        check_password_hash(DUMMY_PASSWORD_HASH, password)
        return None
    return user if user.check_password(password) else None


def load_session_user(session_id: str) -> User | None:
    """The operator a session cookie names, or None when that session has ended: the user is
    gone, logged out or has a new password since, or the cookie predates generations."""
    user_id, _, generation = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit() and len(user_id) <= 10
            and generation.isascii() and generation.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_generation != int(generation):
        return None
    return user


def end_sessions(user_id: int) -> None:
    """Move the generation on in one statement (two logouts at once both end the sessions)."""
    db.session.execute(db.update(User).where(User.id == user_id)
                       .values(session_generation=User.session_generation + 1))
    db.session.commit()
