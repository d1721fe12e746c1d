"""Settings → Smaregi shows the webhook URL whole, ready to paste into Smaregi, and that URL works."""
from __future__ import annotations

import html
import logging
import re

import requests
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.models import SmaregiInbox
from stocklink.services import merchant_settings
from tests.e2e_helpers import CUSTOMER_CODE
from tests.test_webhook import legacy_form, sale_row

pytest_plugins = ["tests.fixtures_platforms"]


def _save_code(app, code: str = CUSTOMER_CODE) -> None:
    with app.app_context():
        merchant_settings.save({"smaregi.customer_code": code})
        db.session.commit()


def _shown_url(client) -> str:
    page = client.get("/settings/").get_data(as_text=True)
    match = re.search(r'<input id="webhook-url" type="text" readonly value="([^"]*)"', page)
    assert match, "no webhook URL field on the settings page"
    return html.unescape(match.group(1))


def _inbox_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(SmaregiInbox.id)))


def test_the_shown_url_is_whole_and_smaregi_is_accepted_there(app, client, logged_in, stocklink_server):
    """The URL on the page carries the whole customer code, and a legacy 在庫情報送信 posted to
    exactly that URL over HTTP is accepted and stored."""
    _save_code(app)
    app.config["PUBLIC_URL"] = stocklink_server.url
    url = _shown_url(client)
    assert url == f"{stocklink_server.url}/webhooks/smaregi/{CUSTOMER_CODE}"
    response = requests.post(url, data=legacy_form(sale_row()), timeout=10)
    assert (response.status_code, response.json()) == (200, {"result": "ok"})
    assert _inbox_count(app) == 1


def test_the_page_has_a_copy_button_and_its_script_is_served_locally(app, client, logged_in):
    """The copy button sits beside the field, and its script comes from stocklink's own static
    files (no CDN)."""
    _save_code(app)
    page = client.get("/settings/").get_data(as_text=True)
    assert 'data-copy="webhook-url"' in page
    assert "/static/copy.js" in page
    script = client.get("/static/copy.js")
    try:
        assert script.status_code == 200 and b"clipboard" in script.data
    finally:
        script.close()
    assert f"/webhooks/smaregi/{CUSTOMER_CODE}" in page


def test_without_a_public_url_the_request_host_is_used_and_localhost_is_flagged(app, client, logged_in):
    """With no STOCKLINK_PUBLIC_URL the URL is built on the request's host; on localhost the page
    says Smaregi cannot reach it."""
    _save_code(app)
    app.config["PUBLIC_URL"] = ""
    assert _shown_url(client) == f"http://localhost/webhooks/smaregi/{CUSTOMER_CODE}"
    assert "STOCKLINK_PUBLIC_URL" in client.get("/settings/").get_data(as_text=True)


def test_a_public_host_is_not_flagged(app, client, logged_in):
    """STOCKLINK_PUBLIC_URL on a public host is used as is (no trailing slash doubled), with no warning."""
    _save_code(app)
    app.config["PUBLIC_URL"] = "https://shop1.stock.example.jp/"
    assert _shown_url(client) == f"https://shop1.stock.example.jp/webhooks/smaregi/{CUSTOMER_CODE}"
    assert "STOCKLINK_PUBLIC_URL" not in client.get("/settings/").get_data(as_text=True)


def test_before_a_customer_code_is_saved_the_page_says_what_to_do(app, client, logged_in):
    """No code yet: no half-made URL to copy, a sentence instead."""
    page = client.get("/settings/").get_data(as_text=True)
    assert 'id="webhook-url"' not in page
    assert "/webhooks/smaregi/" not in page


def test_odd_characters_are_escaped_and_the_url_still_authenticates(app, client, logged_in, stocklink_server):
    """A code with HTML and URL metacharacters is percent-encoded in the URL (never raw HTML on
    the page), and Smaregi posting to that encoded URL is still accepted."""
    code = 'a"><b>&x%y'
    _save_code(app, code)
    app.config["PUBLIC_URL"] = stocklink_server.url
    page = client.get("/settings/").get_data(as_text=True)
    assert '"><b>' not in page
    url = _shown_url(client)
    assert url.endswith("/webhooks/smaregi/a%22%3E%3Cb%3E%26x%25y")
    response = requests.post(url, data=legacy_form(sale_row()), timeout=10)
    assert response.status_code == 200
    assert _inbox_count(app) == 1


def test_a_public_url_with_markup_is_escaped(app, client, logged_in):
    """Whatever STOCKLINK_PUBLIC_URL holds is escaped into the attribute, not written as markup."""
    _save_code(app)
    app.config["PUBLIC_URL"] = 'https://x.example/"><script>alert(1)</script>'
    page = client.get("/settings/").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page or "&#34;&gt;&lt;script&gt;" in page


def test_the_customer_code_is_not_written_to_the_access_log(app, stocklink_server, caplog):
    """The server logs each request's path; the webhook's is written without its customer code."""
    _save_code(app)
    with caplog.at_level(logging.INFO):
        response = requests.post(f"{stocklink_server.url}/webhooks/smaregi/{CUSTOMER_CODE}",
                                 data=legacy_form(sale_row()), timeout=10)
        assert response.status_code == 200
    assert "/webhooks/smaregi/<customer code>" in caplog.text
    assert CUSTOMER_CODE not in caplog.text
