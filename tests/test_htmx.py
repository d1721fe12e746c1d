"""htmx correctness: one URL answers a page or its fragment, and the Back button always gets the page."""
from __future__ import annotations

import pytest

from tests.e2e_helpers import add_product

SWAP = {"HX-Request": "true"}
# What htmx 2 sends to restore history after a cache miss (historyRestoreAsHxRequest is on by default).
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
FRAGMENT_URLS = [("/products/", 'class="count"'), ("/confirmations/", "class=\"empty\"")]


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
