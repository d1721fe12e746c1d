"""The product grid in a real browser (headless Chromium, :mod:`tests.fixtures_browser`; seed 004
商品一覧, seed 002 差異商品・反映): each filter of the search form narrows the rows in place, lands in
the URL and Back brings the previous rows; an inline edit of the total stock reaches Smaregi and,
once the jobs ran, the channels; a difference shows pink until 反映 writes stocklink's figure."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from stocklink.jobs.read_back import read_back
from tests.e2e_helpers import stock_of
from tests.grid_helpers import make_shop

pytest_plugins = ["tests.fixtures_browser"]

PINK = "rgb(255, 228, 236)"  # --pink in static/app.css
MARK = "window.__stocklinkSameDocument = true"
MARKED = "window.__stocklinkSameDocument === true"
ROW_IDS = "() => [...document.querySelectorAll('#rows tr[id^=\"product-\"]')].map(r => +r.id.slice(8))"
A = "8500001"


def rows_shown(page) -> list[int]:
    return page.evaluate(ROW_IDS)


def expect_rows(page, expected: list[int]) -> None:
    """Wait until the grid shows exactly these product ids, in this order (fails naming what it shows)."""
    try:
        page.wait_for_function(f"ids => JSON.stringify(({ROW_IDS})()) === JSON.stringify(ids)", arg=expected)
    except PlaywrightTimeout:
        pass
    assert rows_shown(page) == expected


def by_kind(form, shop):
    form.locator("select[name=kind]").select_option(label="セット")


def by_channel(form, shop):
    form.locator("select[name=channel]").select_option(label="Shopify")


def by_keyword(form, shop):
    form.locator("input[name=q]").fill("Tシャツ,ホワイト")


def by_total_range(form, shop):
    form.locator("input[name=total_min]").fill("1")
    form.locator("input[name=total_max]").fill("12")


def by_link_status(form, shop):
    form.locator("select[name=link]").select_option("problem")


def by_sync_flag(form, shop):
    form.locator("select[name=channel]").select_option(label="カラーミー")
    form.locator("select[name=sync]").select_option("off")


def by_difference(form, shop):
    form.get_by_label("差異商品のみ").check()


EVERYTHING = ["white", "black", "linen", "gift", "cotton"]
FILTERS = [  # (fill the form, expected products, what the URL must carry)
    (by_kind, ["gift"], ["kind=set"]),
    # A channel alone narrows nothing: it shows that channel's columns and scopes the other filters.
    (by_channel, EVERYTHING, ["channel={ch2}"]),
    (by_keyword, ["white"], ["q=T%E3%82%B7%E3%83%A3%E3%83%84%2C%E3%83%9B%E3%83%AF%E3%82%A4%E3%83%88"]),
    (by_total_range, ["white", "linen"], ["total_min=1", "total_max=12"]),
    (by_link_status, ["black"], ["link=problem"]),
    (by_sync_flag, ["black"], ["channel={ch1}", "sync=off"]),
    (by_difference, ["white"], ["diff=1"]),
]


@pytest.mark.parametrize(("fill", "expected", "in_url"), FILTERS, ids=[f[0].__name__ for f in FILTERS])
def test_each_filter_narrows_the_rows_in_place_lands_in_the_url_and_back_restores(
        app, page, login, console, screenshot, fill, expected, in_url):
    """From the whole grid, one filter through the form and 検索: the rows narrow without a page load
    (a chosen channel brings its columns), the address bar carries the filter, and Back shows the
    whole grid again."""
    shop = make_shop(app)
    ids = {name: getattr(shop, name) for name in EVERYTHING}
    login()
    page.goto("/products/")
    expect_rows(page, [ids[n] for n in EVERYTHING])
    channel_column = page.locator("#rows thead th", has_text="チャネル在庫")
    expect(channel_column).to_have_count(0)
    page.evaluate(MARK)
    form = page.locator("form.grid-filters")
    fill(form, shop)
    form.get_by_role("button", name="検索").click()
    parts = [re.escape(part.format(ch1=shop.ch1, ch2=shop.ch2)) for part in in_url]
    expect(page).to_have_url(re.compile("".join(rf"(?=.*[?&]{part}(&|$))" for part in parts)))
    expect_rows(page, [ids[n] for n in expected])
    expect(channel_column).to_have_count(1 if "channel" in " ".join(in_url) else 0)
    assert page.evaluate(MARKED), "the filter reloaded the page instead of swapping the rows"
    screenshot()
    page.go_back()
    expect(page).to_have_url(re.compile(r"/products/$"))
    expect_rows(page, [ids[n] for n in EVERYTHING])
    expect(channel_column).to_have_count(0)
    page.go_forward()
    expect_rows(page, [ids[n] for n in expected])
    page.reload()  # the filtered URL itself, loaded afresh, gives the same rows
    expect_rows(page, [ids[n] for n in expected])
    assert console.errors == [], "\n".join(console.errors)


def test_an_inline_total_edit_reaches_smaregi_and_then_the_channels(app, page, login, console, screenshot,
                                                                    world, jobs_runner):
    """Typing 7 over 10 in 総在庫数 and Enter: Smaregi's sandbox holds 7 at once, the channels keep 10
    until the jobs run, then ColorMe and Shopify hold 7 and the grid shows it."""
    item = world.add(A, "GR-1", "リネンシャツ", 10)
    login()
    page.goto("/products/")
    row = page.locator(f"#product-{item['product']}")
    cell = row.get_by_label("総在庫数")
    expect(cell).to_have_value("10")
    cell.fill("7")
    with page.expect_response(lambda r: r.url.endswith(f"/products/{item['product']}/total")) as answer:
        cell.press("Enter")
    assert answer.value.status == 200
    expect(row.get_by_label("総在庫数")).to_have_value("7")
    expect(row.locator(".error")).to_have_count(0)
    assert world.smaregi.stock_of(A) == 7
    assert stock_of(app, A) == 7
    assert world.channel_stock(A) == (10, 10)
    screenshot("saved")
    assert jobs_runner() >= 1
    assert world.channel_stock(A) == (7, 7)
    page.reload()
    expect(page.locator(f"#product-{item['product']} .tag", has_text="カラーミー")).to_have_text("カラーミー: 7")
    screenshot()
    assert console.errors == [], "\n".join(console.errors)


def test_a_difference_is_pink_until_reflect_writes_stocklinks_figure(app, page, login, console, screenshot,
                                                                     world, jobs_runner):
    """ColorMe edited 20 → 5 is read back as a difference, pink in the grid; ticking the row and
    反映 then the jobs put 20 on ColorMe, and after a reload the cell is no longer pink."""
    item = world.add(A, "GR-1", "リネンシャツ", 20)
    world.colorme.set_stock(item["colorme"], 5)
    assert read_back(world.colorme_id).startswith("read 1, 1 differ")
    login()
    page.goto(f"/products/?channel={world.colorme_id}")
    row = page.locator(f"#product-{item['product']}")
    stock = row.locator("td.stock")
    expect(stock).to_have_class(re.compile(r"\bdiff\b"))
    expect(stock).to_have_css("background-color", PINK)
    expect(stock).to_contain_text("5")
    screenshot("pink")
    row.get_by_label("選択 GR-1").check()
    with page.expect_navigation():
        page.get_by_role("button", name="反映（選択）").click()
    assert "channel=" in page.url
    assert world.colorme.stock(item["colorme"]) == 5  # nothing written before the push job runs
    assert jobs_runner() >= 1
    assert world.colorme.stock(item["colorme"]) == 20
    page.reload()
    stock = page.locator(f"#product-{item['product']} td.stock")
    expect(stock).not_to_have_class(re.compile(r"\bdiff\b"))
    expect(stock).not_to_have_css("background-color", PINK)
    expect(stock).to_contain_text("20")
    screenshot()
    assert console.errors == [], "\n".join(console.errors)
