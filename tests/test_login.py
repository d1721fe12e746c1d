"""Login and logout as an attacker would try them: a cookie kept after logout, a shared proxy
address, many user names from one address, timing that tells which user names exist."""
from __future__ import annotations

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from stocklink.extensions import db
from stocklink.models import ErrorRecord, User
from tests.conftest import AuthActions, csrf_token
from tests.test_auth import CONSOLE_GET


def _saved_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _browser(app, cookie: str):
    """Another browser that replays a saved session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie)
    return other


# --- logout ends the session on the server ------------------------------------------------------------

@pytest.mark.parametrize("path", CONSOLE_GET)
def test_cookie_saved_before_logout_opens_no_page(app, client, logged_in, path):
    """The signed cookie is still valid as a signature, but its session has ended."""
    saved = _saved_cookie(client)
    assert _browser(app, saved).get(path).status_code == 200  # the copy worked before logout
    client.post("/logout", data={"csrf_token": logged_in.token()})
    response = _browser(app, saved).get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_cookie_saved_before_logout_cannot_post(app, client, logged_in):
    """A replayed cookie with its CSRF token changes nothing after logout."""
    with app.app_context():
        db.session.add(ErrorRecord(source="smaregi", level=8, kind="maintenance", message="boom"))
        db.session.commit()
    token = logged_in.token("/errors/")
    saved = _saved_cookie(client)
    client.post("/logout", data={"csrf_token": token})
    response = _browser(app, saved).post("/errors/delete-all", data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    with app.app_context():
        assert db.session.scalar(select(ErrorRecord.message)) == "boom"


def test_logging_in_again_works_and_the_old_cookie_stays_dead(app, client, logged_in):
    """The next login opens a new session; the one ended by logout does not come back."""
    saved = _saved_cookie(client)
    client.post("/logout", data={"csrf_token": logged_in.token()})
    assert logged_in.login().status_code == 302
    assert client.get("/").status_code == 200
    assert _browser(app, saved).get("/").status_code == 302


def test_logout_ends_the_operators_other_browsers_but_not_other_operators(app, client, logged_in):
    """Logout ends every session of that operator; another operator stays logged in."""
    laptop = _saved_cookie(client)
    phone = app.test_client()
    assert AuthActions(app, phone).login().status_code == 302
    logged_in.create(username="kana", password="another long password")
    colleague = app.test_client()
    token = csrf_token(colleague)
    assert colleague.post("/login", data={"username": "kana", "password": "another long password",
                                          "csrf_token": token}).status_code == 302
    client.post("/logout", data={"csrf_token": logged_in.token()})
    assert _browser(app, laptop).get("/").status_code == 302
    assert phone.get("/").status_code == 302
    assert colleague.get("/").status_code == 200


def test_new_password_ends_the_sessions_opened_with_the_old_one(app, client, logged_in, runner):
    """`flask user create` on an existing operator sets a new password and ends their sessions."""
    assert client.get("/").status_code == 200
    result = runner.invoke(args=["user", "create", "operator", "--password", "a brand new password"])
    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 302
    assert logged_in.login(password="a brand new password").status_code == 302


def test_cookie_from_before_generations_opens_nothing(app, client, logged_in):
    """A session that names only the user id (as stocklink wrote them before) logs in again."""
    with client.session_transaction() as session:
        session["_user_id"] = session["_user_id"].split(":")[0]
    assert client.get("/").status_code == 302


def test_migration_0004_gives_existing_operators_generation_zero(tmp_path, redis_server):
    """Upgrading a database with operators keeps them, at generation 0, able to log in."""
    from stocklink import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}", "REDIS_URL": redis_server,
                      "SECRET_KEY": "test", "TESTING": True})
    with app.app_context():
        upgrade(revision="0003")
        db.session.execute(text("INSERT INTO users (username, password_hash, created_at) "
                                "VALUES ('owner', 'x', '2026-11-01 00:00:00')"))
        db.session.commit()
        upgrade()
        user = db.session.scalars(select(User)).one()
        assert user.username == "owner" and user.session_generation == 0
        user.set_password("correct horse battery")
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    client = app.test_client()
    response = client.post("/login", data={"username": "owner", "password": "correct horse battery",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
