"""Login and logout as an attacker would try them: a cookie kept after logout, a shared proxy
address, many user names from one address, timing that tells which user names exist."""
from __future__ import annotations

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from stocklink.infra.extensions import db
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


def test_migration_0006_gives_existing_operators_generation_zero(tmp_path, redis_server):
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


# --- the throttle counts per (user name, client address) ----------------------------------------------

PASSWORD = "correct horse battery"


class Browser:
    """One operator's browser: its own cookies, its own address (and headers, behind a proxy)."""

    def __init__(self, app, remote_addr: str = "127.0.0.1", forwarded_for: str | None = None):
        self.client = app.test_client()
        self.environ = {"REMOTE_ADDR": remote_addr}
        self.headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}

    def login(self, username: str = "operator", password: str = PASSWORD) -> int:
        html = self.client.get("/login", environ_base=self.environ, headers=self.headers).get_data(as_text=True)
        token = html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        return self.client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                                environ_base=self.environ, headers=self.headers).status_code


@pytest.fixture
def behind_nginx(app, auth):
    """The same database and Redis, started with TRUSTED_PROXIES=1; every request arrives from
    nginx on 127.0.0.1 with the browser's address appended to X-Forwarded-For."""
    from stocklink import create_app

    keys = ("TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "MAIL_SERVER", "MAIL_PORT")
    proxied = create_app({**{k: app.config[k] for k in keys}, "TRUSTED_PROXIES": 1})
    auth.create(username="kana", password=PASSWORD)
    yield proxied
    with proxied.app_context():
        db.session.remove()
        db.engine.dispose()


def test_behind_nginx_ten_bad_logins_lock_out_only_that_name_at_that_address(behind_nginx):
    """The fault probe's case: ten typos by one operator used to lock out everyone behind nginx."""
    typist = Browser(behind_nginx, forwarded_for="198.51.100.7")
    for _ in range(10):
        assert typist.login(password="wrong password") == 401
    assert typist.login() == 429  # that name from that address waits, even with the right password
    assert Browser(behind_nginx, forwarded_for="198.51.100.8").login() == 302  # the same name elsewhere
    assert Browser(behind_nginx, forwarded_for="198.51.100.7").login("kana") == 302  # a colleague there


def test_behind_nginx_a_forged_address_on_the_left_changes_nothing(behind_nginx):
    """nginx appends the real address; what the client wrote before it is not believed."""
    for n in range(10):
        browser = Browser(behind_nginx, forwarded_for=f"10.9.9.{n}, 198.51.100.7")
        assert browser.login(password="wrong password") == 401
    assert Browser(behind_nginx, forwarded_for="10.1.1.1, 198.51.100.7").login() == 429


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app, auth):
    """TRUSTED_PROXIES=0 (the default): a header naming a new address each time does not dodge
    the count, which is kept for the address the connection comes from."""
    for n in range(10):
        assert Browser(app, remote_addr="203.0.113.9", forwarded_for=f"10.0.0.{n}").login(
            password="wrong password") == 401
    assert Browser(app, remote_addr="203.0.113.9", forwarded_for="10.0.0.99").login() == 429
    assert Browser(app, remote_addr="203.0.113.10").login() == 302


def test_one_name_failing_does_not_lock_out_another_at_the_same_address(app, auth):
    """Without a proxy setting everyone may share one address: the count is per user name there."""
    auth.create(username="kana", password=PASSWORD)
    app.config["LOGIN_ATTEMPTS_PER_15_MIN"] = 3
    for _ in range(3):
        assert Browser(app).login(password="wrong password") == 401
    assert Browser(app).login() == 429
    assert Browser(app).login("kana") == 302


def test_many_names_from_one_address_meet_the_address_limit(app, auth):
    """Spraying user names from one address is stopped by the looser per-address limit, for
    every name from there (the right password too), and only there."""
    app.config["LOGIN_ATTEMPTS_PER_15_MIN"] = 3
    app.config["LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN"] = 8
    sprayer = Browser(app, remote_addr="192.0.2.66")
    for n in range(8):
        assert sprayer.login(username=f"guess{n}", password="wrong password") == 401
    assert sprayer.login(username="guess99", password="wrong password") == 429
    assert sprayer.login() == 429
    assert Browser(app, remote_addr="192.0.2.67").login() == 302


def test_success_clears_that_names_count_but_not_the_addresses(app, auth):
    """A login starts the name's count again; the address's stays (a known account cannot reset a spray)."""
    app.config["LOGIN_ATTEMPTS_PER_15_MIN"] = 3
    app.config["LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN"] = 4
    browser = Browser(app, remote_addr="192.0.2.70")
    for _ in range(2):
        assert browser.login(password="wrong password") == 401
    assert browser.login() == 302
    for _ in range(2):  # the name's count started again: two more are still only 401
        assert Browser(app, remote_addr="192.0.2.70").login(password="wrong password") == 401
    # 2 + 2 failures there: the address's limit of 4 holds although the login came between.
    assert Browser(app, remote_addr="192.0.2.70").login(username="kana") == 429


def test_counts_expire_after_fifteen_minutes(app, auth):
    """Both counts are kept 15 minutes after the latest failure (Redis TTL), then forgotten."""
    from stocklink.infra.queues import get_redis

    Browser(app, remote_addr="192.0.2.80").login(password="wrong password")
    with app.app_context():
        keys = get_redis().keys("stocklink:login-attempts:*")
        assert len(keys) == 2
        assert all(840 < get_redis().ttl(key) <= 900 for key in keys)


# --- an unknown user name costs the same as a wrong password ------------------------------------------

@pytest.fixture
def hash_checks(monkeypatch):
    """Every password hash the login checks, in order (the real check still runs)."""
    import stocklink.models.users as users

    seen = []
    real = users.check_password_hash

    def check(pwhash, password):
        seen.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(users, "check_password_hash", check)
    return seen


def test_unknown_user_and_wrong_password_each_check_one_hash_of_the_same_cost(app, auth, hash_checks):
    """Both refusals do the same work: one check against a hash with the same method and cost
    (scrypt's parameters are in the hash), so their time does not tell which names exist."""
    assert Browser(app).login(password="wrong password") == 401
    assert Browser(app).login(username="nobody-here", password="wrong password") == 401
    with app.app_context():
        real_hash = db.session.scalars(select(User.password_hash).where(User.username == "operator")).one()
    assert hash_checks == [real_hash, hash_checks[1]]
    assert hash_checks[1] != real_hash
    assert hash_checks[1].split("$")[0] == real_hash.split("$")[0]


def test_dummy_hash_has_the_cost_new_passwords_get():
    """If Werkzeug's default method or cost changes, the dummy hash must follow (this fails)."""
    from werkzeug.security import generate_password_hash

    from stocklink.models.users import DUMMY_PASSWORD_HASH
    assert DUMMY_PASSWORD_HASH.split("$")[0] == generate_password_hash("x").split("$")[0]


def test_unknown_and_known_names_get_the_same_answer(app, auth):
    """Same status and the same message for both."""
    known = Browser(app)
    unknown = Browser(app)
    assert known.login(password="wrong password") == unknown.login(username="nobody-here",
                                                                    password="wrong password") == 401
