"""Login, CSRF and authorization over every console route."""
from __future__ import annotations

import pytest

from stocklink.infra.extensions import db
from stocklink.models import User
from tests.conftest import csrf_token

CONSOLE_GET = ["/", "/counts", "/products/", "/confirmations/", "/confirmations/badge", "/exclusions/", "/errors/",
               "/outbox/", "/settings/", "/settings/channels/new", "/catalogue/", "/links/", "/products/export.csv",
               "/orders/"]
CONSOLE_POST = ["/confirmations/release", "/confirmations/exclude", "/exclusions/remove", "/errors/delete-all",
                "/errors/1/delete", "/settings/smaregi", "/settings/sync", "/settings/notify",
                "/settings/smaregi/test", "/settings/channels/new", "/catalogue/import/smaregi", "/links/auto",
                "/products/bulk", "/products/1/total", "/products/listings/1/min_stock", "/logout",
                "/orders/1/retry", "/orders/1/resolve", "/orders/channels/1", "/products/1/threshold"]


def test_every_console_route_is_registered_or_listed(app):
    """A new console route must be added to this test's lists (so it is checked below)."""
    rules = {r.rule for r in app.url_map.iter_rules()
             if r.endpoint not in ("static",) and not r.rule.startswith(("/webhooks", "/healthz", "/login",
                                                                           "/language"))}
    listed = set(CONSOLE_GET) | set(CONSOLE_POST) | {"/products/<int:product_id>", "/outbox/<int:message_id>",
                                                     "/errors/<int:error_id>/delete",
                                                     "/settings/channels/<int:channel_id>",
                                                     "/settings/channels/<int:channel_id>/test",
                                                     "/catalogue/import/channel/<int:channel_id>",
                                                     "/catalogue/imports/<job_id>", "/links/<int:listing_id>",
                                                     "/links/<int:listing_id>/link", "/links/<int:listing_id>/unlink",
                                                     "/products/<int:product_id>/total",
                                                     "/products/listings/<int:listing_id>/<field>",
                                                     "/orders/<int:order_id>", "/orders/<int:order_id>/retry",
                                                     "/orders/<int:order_id>/resolve",
                                                     "/orders/channels/<int:channel_id>",
                                                     "/products/<int:product_id>/threshold"}
    assert rules <= listed, rules - listed


@pytest.mark.parametrize("path", CONSOLE_GET)
def test_console_page_requires_login(client, path):
    """Anonymous GETs are sent to the login page."""
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", CONSOLE_GET)
def test_console_page_renders_when_logged_in(client, logged_in, path):
    """Logged-in operators see every console page."""
    assert client.get(path).status_code == 200


def test_htmx_request_without_login_gets_hx_redirect(client):
    """htmx ignores 3xx for navigation, so it gets HX-Redirect on a 200."""
    response = client.get("/products/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize("path", CONSOLE_POST)
def test_post_without_csrf_token_is_refused(client, logged_in, path):
    """Every form POST needs the CSRF token."""
    response = client.post(path, data={"ids": "1"})
    assert response.status_code == 400


@pytest.mark.parametrize("path", [p for p in CONSOLE_POST if p != "/logout"])
def test_post_without_login_is_refused(client, path):
    """POSTs by anonymous users never reach the view."""
    token = csrf_token(client)
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_wrong_password_is_refused_and_throttled(app, client, auth):
    """Failed logins answer 401; after the limit even the right password is refused for a while."""
    app.config["LOGIN_ATTEMPTS_PER_15_MIN"] = 3
    for _ in range(3):
        assert auth.login(password="wrong password").status_code == 401
    response = auth.login()
    assert response.status_code == 429
    assert "15" in response.get_data(as_text=True)


def test_login_sets_a_hardened_session_cookie(client, auth):
    """The session cookie is HttpOnly and SameSite."""
    response = auth.login()
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_login_rejects_offsite_next(client, auth):
    """A ?next= pointing elsewhere cannot turn login into an open redirect."""
    token = csrf_token(client)
    response = client.post("/login?next=https://evil.example/", data={
        "username": "operator", "password": "correct horse battery", "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_security_headers_on_pages(client):
    """Every response carries the security headers."""
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_user_create_command_hashes_the_password(app, runner):
    """`flask user create` stores a hash, never the password."""
    result = runner.invoke(args=["user", "create", "hana", "--password", "s3cret-pass"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.query(User).filter_by(username="hana").one()
        assert "s3cret-pass" not in user.password_hash
        assert user.check_password("s3cret-pass")


def test_logout_ends_the_session(client, logged_in):
    """After logout the console asks for login again."""
    client.post("/logout", data={"csrf_token": logged_in.token()})
    assert client.get("/").status_code == 302
