"""The console in a real browser (headless Chromium, :mod:`tests.fixtures_browser`): logging
in, the language switcher, and the product grid's keyword search swapped by the vendored htmx
with the filter in the URL and the Back button."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from stocklink.infra.extensions import db
from stocklink.services.search_text import refresh_products
from tests.e2e_helpers import add_product

pytest_plugins = ["tests.fixtures_browser"]

# Set on window before a search: still there afterwards means the rows were swapped in place,
# not loaded with a new page.
MARK = "window.__stocklinkSameDocument = true"
MARKED = "window.__stocklinkSameDocument === true"


def keyword_of(url: str) -> str | None:
    """The grid's keyword as the URL carries it (None: no keyword in the query)."""
    return parse_qs(urlsplit(url).query).get("q", [None])[0]


def test_login_shows_the_japanese_dashboard_with_htmx_running(page, login, console, screenshot):
    """Logging in through the form lands on the dashboard in Japanese, with htmx loaded and no
    console error (a CSP violation or a failed script would be one)."""
    page.goto("/")
    assert urlsplit(page.url).path == "/login"  # the login wall answered
    expect(page.locator("h1")).to_have_text("ログイン")

    login()
    assert urlsplit(page.url).path == "/"
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("h1")).to_have_text("ダッシュボード")
    expect(page.locator("header nav")).to_contain_text("商品")
    expect(page.locator("header .tools")).to_contain_text("ログアウト (operator)")
    assert page.evaluate("typeof htmx === 'object' && typeof htmx.version === 'string'")
    screenshot()
    assert console.errors == [], "\n".join(console.errors)


def test_language_switcher_changes_to_english_and_back_on_the_same_page(page, login, console, screenshot):
    """English then 日本語 from the header: every label follows, and the operator stays on the page."""
    login()
    page.goto("/products/")
    expect(page.locator("h1")).to_have_text("商品")

    page.locator("header .tools").get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Products")
    expect(page.locator("header nav")).to_contain_text("Dashboard")
    expect(page.get_by_role("button", name="Search")).to_be_visible()
    assert urlsplit(page.url).path == "/products/"
    screenshot()

    page.goto("/")
    expect(page.locator("h1")).to_have_text("Dashboard")  # kept for the session, not the page

    page.locator("header .tools").get_by_role("button", name="日本語").click()
    expect(page.locator("html")).to_have_attribute("lang", "ja")
    expect(page.locator("h1")).to_have_text("ダッシュボード")
    assert urlsplit(page.url).path == "/"
    assert console.errors == [], "\n".join(console.errors)


def test_grid_keyword_search_swaps_the_rows_pushes_the_url_and_back_restores(app, page, login, console,
                                                                               screenshot):
    """Typing a keyword and pressing Enter swaps only the rows (same document), puts ``?q=`` in
    the URL, and Back returns to the previous filter's rows."""
    for sid, code, name in (("9300001", "APL-1", "青りんご"), ("9300002", "APL-2", "りんご飴"),
                            ("9300003", "MKN-1", "みかん")):
        add_product(app, sid, code, name, stock=3)
    with app.app_context():
        refresh_products()
        db.session.commit()
    login()
    page.goto("/products/")
    rows, keyword = page.locator("#rows tbody tr"), page.locator("form.filters input[name=q]")
    expect(rows).to_have_count(3)
    expect(page.locator("#rows .count")).to_have_text("3 SKU")
    page.evaluate(MARK)

    keyword.fill("りんご")
    keyword.press("Enter")
    page.wait_for_url(lambda url: keyword_of(url) == "りんご")
    expect(rows).to_have_count(2)
    expect(page.locator("#rows")).to_contain_text("青りんご")
    expect(page.locator("#rows")).to_contain_text("りんご飴")
    expect(page.locator("#rows")).not_to_contain_text("みかん")
    expect(page.locator("#rows .count")).to_have_text("2 SKU")
    assert page.evaluate(MARKED), "the search loaded a new page instead of swapping the rows"
    screenshot()

    keyword.fill("みかん")
    keyword.press("Enter")
    page.wait_for_url(lambda url: keyword_of(url) == "みかん")
    expect(rows).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text("みかん")

    page.go_back()
    page.wait_for_url(lambda url: keyword_of(url) == "りんご")
    expect(rows).to_have_count(2)
    expect(page.locator("#rows")).not_to_contain_text("みかん")
    expect(page.locator("#rows .count")).to_have_text("2 SKU")

    page.go_back()
    page.wait_for_url(lambda url: urlsplit(url).path == "/products/" and keyword_of(url) is None)
    expect(rows).to_have_count(3)
    assert page.evaluate(MARKED), "Back loaded a new page instead of restoring htmx's history"
    assert console.errors == [], "\n".join(console.errors)
