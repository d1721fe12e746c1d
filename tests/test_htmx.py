"""htmx correctness: one URL answers a page or its fragment, the Back button always gets the
page, and ``review-changed`` really refreshes the queue badge and the dashboard counts."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import ConfirmationItem
from tests.e2e_helpers import add_product

SWAP = {"HX-Request": "true"}
# What htmx 2 sends to restore history after a cache miss (historyRestoreAsHxRequest is on by default).
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
FRAGMENT_URLS = [("/products/", 'class="count"'), ("/confirmations/", "class=\"empty\"")]


def queue(app, *smaregi_ids: str) -> list[str]:
    """Products known to stocklink but linked nowhere, waiting in the confirmation queue; their item ids."""
    with app.app_context():
        for sid in smaregi_ids:
            product_id = add_product(app, sid, f"C{sid}", f"商品{sid}", stock=5)
            db.session.add(ConfirmationItem(smaregi_product_id=sid, product_id=product_id, product_code=f"C{sid}",
                                            name=f"商品{sid}", reason="no_listing"))
        db.session.commit()
        return [str(i) for i in db.session.scalars(select(ConfirmationItem.id).where(
            ConfirmationItem.smaregi_product_id.in_(smaregi_ids)))]


def listener(html: str, element_id: str) -> tuple[str, str]:
    """(hx-get URL, text) of the element ``element_id``, which must listen for review-changed on <body>."""
    match = re.search(rf'<(\w+)\b[^>]*\bid="{element_id}"[^>]*>', html)
    assert match, f"no #{element_id} in the page"
    tag = match.group(0)
    assert 'hx-trigger="review-changed from:body"' in tag and 'hx-swap="outerHTML"' in tag
    url = re.search(r'hx-get="([^"]+)"', tag).group(1)
    end = html.index(f"</{match.group(1)}>", match.end())
    return url, html[match.end():end]


def badge_count(html: str) -> int:
    _url, text = listener(html, "queue-badge")
    return int(text)


@pytest.mark.parametrize(("path", "marker"), FRAGMENT_URLS)
def test_htmx_swap_gets_the_fragment_only(client, logged_in, path, marker):
    """An htmx request gets the rows alone, marked as varying on both htmx headers."""
    response = client.get(path, headers=SWAP)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and marker in html
    assert {"HX-Request", "HX-History-Restore-Request"} <= set(response.vary)


@pytest.mark.parametrize(("path", "marker"), FRAGMENT_URLS)
def test_history_restore_gets_the_whole_page(client, logged_in, path, marker):
    """The Back button after an htmx history cache miss gets the page, though HX-Request is set."""
    response = client.get(path, headers=RESTORE)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html and "<nav>" in html and marker in html
    assert {"HX-Request", "HX-History-Restore-Request"} <= set(response.vary)


@pytest.mark.parametrize("path", [p for p, _m in FRAGMENT_URLS])
def test_navigation_gets_the_whole_page_with_vary(client, logged_in, path):
    """A plain browser GET gets the page, and the same Vary (a cache must not mix the two answers)."""
    response = client.get(path)
    assert "<html" in response.get_data(as_text=True)
    assert {"HX-Request", "HX-History-Restore-Request"} <= set(response.vary)


def test_products_search_swap_and_restore_show_the_same_rows(app, client, logged_in):
    """The rows a search swaps in are the rows the restored page shows for the pushed URL."""
    add_product(app, "9100001", "APPLE1", "りんご", stock=3)
    add_product(app, "9100002", "PEAR1", "みかん", stock=4)
    swap = client.get("/products/?q=APPLE", headers=SWAP).get_data(as_text=True)
    restore = client.get("/products/?q=APPLE", headers=RESTORE).get_data(as_text=True)
    assert "りんご" in swap and "みかん" not in swap and "<html" not in swap
    assert "りんご" in restore and "みかん" not in restore and "<html" in restore


def test_history_restore_without_login_is_redirected_not_hx_redirected(client):
    """htmx swaps a history-restore answer unread, so an expired session gets a real redirect there."""
    response = client.get("/products/", headers=RESTORE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert "HX-Redirect" not in response.headers


@pytest.mark.parametrize("action", ["release", "exclude"])
def test_queue_action_triggers_review_changed_and_the_listeners_refresh(app, client, logged_in, action):
    """Release and exclude send HX-Trigger: review-changed; the nav badge and the dashboard counts
    listen for it on <body>, and their hx-get answers the new number."""
    ids = queue(app, "9200001", "9200002")
    dashboard = client.get("/").get_data(as_text=True)
    assert badge_count(dashboard) == 2
    counts_url, counts_html = listener(dashboard, "counts")
    assert re.search(r"<strong>2</strong></a><span>確認が必要な商品</span>", counts_html)
    badge_url, _text = listener(client.get("/confirmations/").get_data(as_text=True), "queue-badge")

    token = logged_in.token("/confirmations/")
    response = client.post(f"/confirmations/{action}", data={"ids": ids[:1]},
                           headers={**SWAP, "X-CSRFToken": token})
    assert response.status_code == 200
    assert "review-changed" in json.loads(response.headers["HX-Trigger"])

    badge = client.get(badge_url, headers=SWAP)
    assert badge.status_code == 200 and "<html" not in badge.get_data(as_text=True)
    assert badge_count(badge.get_data(as_text=True)) == 1
    counts = client.get(counts_url, headers=SWAP)
    assert counts.status_code == 200
    _url, counts_html = listener(counts.get_data(as_text=True), "counts")
    assert re.search(r"<strong>1</strong></a><span>確認が必要な商品</span>", counts_html)


def test_badge_is_hidden_but_still_listening_when_the_queue_is_empty(client, logged_in):
    """At zero the badge is hidden, not removed: a removed element could not hear review-changed."""
    html = client.get("/confirmations/badge").get_data(as_text=True)
    tag = re.search(r'<span id="queue-badge"[^>]*>', html).group(0)
    assert " hidden" in tag and badge_count(html) == 0


@pytest.mark.parametrize("path", ["/confirmations/badge", "/counts"])
def test_refresh_endpoints_require_login(client, path):
    """The badge and the counts are console data: anonymous htmx requests are sent to the login page."""
    response = client.get(path, headers=SWAP)
    assert response.status_code == 200 and response.get_data() == b""
    assert response.headers["HX-Redirect"].startswith("/login")
    assert client.get(path).status_code == 302
