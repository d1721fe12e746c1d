"""The product grid's filters (seed 004 ■検索, SPEC §8): each one in the URL, bad values named and
ignored, 100 rows a page counted in SKUs, and a fixed number of queries per page."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event, insert

from stocklink.infra.extensions import db
from stocklink.models import Product
from stocklink.services import merchant_settings
from stocklink.services.search_text import refresh_products
from tests.grid_helpers import SWAP, make_shop, row_html, shown


@pytest.fixture
def shop(app, logged_in):
    return make_shop(app)


def grid(client, query: str = "", **headers) -> str:
    response = client.get(f"/products/?{query}", headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize(("query", "expected"), [
    ("q=Tシャツ,ホワイト", ["white"]),
    ("q=ｔシャツ", ["white", "black"]),
    ("q=ﾘﾈﾝ", ["linen"]),
    ("q=sku-abc1", ["white"]),  # a listing's SKU finds its product
    ("q=TS-bk-m", ["black"]),
    ("q=%25", ["cotton"]),  # LIKE's wildcards are the characters themselves
    ("q=_", ["cotton"]),
    ("q=リネン、シャツ", ["linen"]),
    ("q=nothing-like-this", []),
])
def test_keyword_finds_what_the_screen_shows(client, shop, query, expected):
    """Commas are AND; width, case and half-width katakana fold; SKUs of listings match; % and _ are literal."""
    assert shown(grid(client, query)) == [getattr(shop, name) for name in expected]


@pytest.mark.parametrize(("query", "expected"), [
    ("kind=set", ["gift"]),
    ("total=5", ["white"]),
    ("total_min=1&total_max=12", ["white", "linen"]),
    ("total_min=13", ["cotton"]),
    ("total_max=0", ["black", "gift"]),
    ("link=linked", ["white", "black"]),
    ("link=unlinked", ["linen", "gift", "cotton"]),
    ("link=problem", ["black"]),
    ("channel={ch1}&link=problem", []),
    ("channel={ch2}&link=problem", ["black"]),
    ("channel={ch1}&sync=on", ["white"]),
    ("channel={ch1}&sync=off", ["black"]),
    ("channel={ch2}&sync=off", []),
    ("diff=1", ["white"]),
    ("channel={ch2}&diff=1", []),
    ("q=シャツ&channel={ch1}&link=unlinked", ["linen"]),
])
def test_each_filter(client, shop, query, expected):
    """Each filter of seed 004 narrows the rows; the listing filters look at the chosen channel only."""
    html = grid(client, query.format(ch1=shop.ch1, ch2=shop.ch2))
    assert shown(html) == [getattr(shop, name) for name in expected]
    assert f"{len(expected)} SKU" in html


def test_choosing_a_channel_shows_its_columns_and_differences_in_pink(client, shop):
    """With a channel chosen, its columns appear; a listing with a difference has the pink class."""
    plain = grid(client)
    assert "<th>最小</th>" not in plain
    html = grid(client, f"channel={shop.ch1}")
    assert "<th>連携</th><th>最小</th><th>最大</th>" in html
    white = row_html(html, shop.white)
    assert re.search(r'class="num stock diff">4', white)
    assert "SKU-ABC1" in white
    assert 'class="num stock">0' in row_html(html, shop.black)
    assert "カラーミーで紐づいていません" in row_html(html, shop.linen)


def test_a_set_shows_its_availability_and_components(client, shop):
    """A set's total is min(component total // quantity) — 2 here, not 0 — and its components are listed."""
    row = row_html(grid(client, "kind=set"), shop.gift)
    assert re.search(r'<td class="num total"><span[^>]*>2</span>', row)
    assert "Tシャツ" in row and "× 2" in row and "リネンシャツ" in row and "× 1" in row


def test_the_image_column_follows_the_display_setting(app, client, shop):
    """Product images are shown only while the display setting is on (seed 004 表示設定)."""
    with app.app_context():
        db.session.get(Product, shop.white).image_url = "https://img.example.com/w.jpg"
        merchant_settings.save({"display.images": False})
    assert "img.example.com" not in grid(client)
    with app.app_context():
        merchant_settings.save({"display.images": True})
    assert '<img src="https://img.example.com/w.jpg"' in grid(client)


def test_the_filters_come_back_in_the_form_and_the_rows_swap_alone(client, shop):
    """A bookmarked URL fills the form again; an htmx request gets only the rows."""
    html = grid(client, f"q=シャツ&channel={shop.ch1}&sync=on&total_min=1&diff=1")
    assert 'name="q" value="シャツ"' in html and 'name="total_min" value="1"' in html
    assert f'<option value="{shop.ch1}" selected>' in html and '<option value="on" selected>' in html
    assert 'name="diff" value="1" checked' in html
    fragment = grid(client, "q=シャツ", **SWAP)
    assert "<html" not in fragment and 'id="bulk"' in fragment
    assert shown(fragment) == [shop.white, shop.black, shop.linen]


@pytest.mark.parametrize(("query", "message"), [
    ("total=abc", "総在庫数には"),
    ("total_min=10&total_max=1", "範囲"),
    ("page=0", "ページ番号"),
    ("page=99999999999", "ページ番号"),
    ("link=sideways", "sideways"),
    ("channel=999", "999"),
    ("channel=x1", "x1"),
    ("kind=bundle", "bundle"),
    ("diff=maybe", "maybe"),
    ("total=5&total_min=1", "範囲"),
])
def test_a_bad_value_is_named_and_the_grid_still_renders(client, shop, query, message):
    """A value the grid cannot use is named above it and ignored: the other rows still show."""
    html = grid(client, query)
    [problem] = re.findall(r'<p class="flash warning">([^<]*)</p>', html)
    assert message in problem
    assert len(shown(html)) >= 1


def test_a_hundred_rows_a_page_and_page_links_keep_the_search(app, client, logged_in):
    """205 matching products: 100, 100, then 5 rows; the count is in SKUs; Next keeps the keyword."""
    with app.app_context():
        db.session.execute(insert(Product), [{"smaregi_product_id": str(9000000 + i), "product_code": f"P{i:04d}",
                                              "name": f"靴下 {i}", "smaregi_stock": i} for i in range(205)])
        db.session.add(Product(smaregi_product_id="9999999", product_code="HAT", name="帽子"))
        refresh_products(None)
        db.session.commit()
    first = grid(client, "q=靴下")
    assert "205 SKU" in first and len(shown(first)) == 100
    assert 'href="/products/?q=%E9%9D%B4%E4%B8%8B&amp;page=2"' in first
    third = grid(client, "q=靴下&page=3")
    assert len(shown(third)) == 5 and "3 / 3" in third
    assert 'href="/products/?q=%E9%9D%B4%E4%B8%8B&amp;page=2"' in third
    past = grid(client, "q=靴下&page=9")  # past the end: the last page
    assert len(shown(past)) == 5 and "3 / 3" in past


def test_a_page_costs_the_same_queries_for_100_rows_as_for_1(app, client, logged_in):
    """No query per row: the grid's statements do not grow with the page."""
    with app.app_context():
        db.session.execute(insert(Product), [{"smaregi_product_id": str(7000000 + i), "name": f"品 {i}",
                                              "smaregi_stock": i} for i in range(100)])
        refresh_products(None)
        db.session.commit()
        counted = []

        def count(*_args):
            counted.append(1)

        grid(client, "q=品 1&total=1")  # warm: the first request of a session loads more than the grid
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert len(shown(grid(client, "q=品 1&total=1"))) == 1
            one = len(counted)
            counted.clear()
            assert len(shown(grid(client, "q=品"))) == 100
            hundred = len(counted)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    assert hundred == one


def test_errors_and_link_problems_are_shown_above_the_grid_with_their_fix(app, client, shop):
    """Seed 004 ②エラーメッセージ: 複数の商品が紐づいています links to those products; a stopped channel's
    error links to its settings."""
    from stocklink.models import Channel
    from stocklink.services.incidents import record_error

    with app.app_context():
        record_error(source="channel", level=9, kind="auth", key="channel_auth", detail="401",
                     channel=db.session.get(Channel, shop.ch1))
        db.session.commit()
    html = grid(client)
    alerts = re.search(r'<section class="card alert alerts">.*?</section>', html, re.S).group(0)
    assert "複数の商品が紐づいています（1件）" in alerts
    assert f'href="/products/?channel={shop.ch2}&amp;link=problem"' in alerts
    assert f'href="/settings/channels/{shop.ch1}"' in alerts and "カラーミー" in alerts
    assert shown(grid(client, f"channel={shop.ch2}&link=problem")) == [shop.black]


def test_no_alert_box_when_all_is_well(app, client, logged_in):
    assert 'class="card alert alerts"' not in grid(client)


def test_the_product_page_lists_a_sets_components(client, shop):
    """A set's page shows its availability and each component with its quantity."""
    html = client.get(f"/products/{shop.gift}").get_data(as_text=True)
    assert "構成品から計算したセット在庫数</dt><dd>2</dd>" in html
    assert re.search(r"<td>Tシャツ</td><td>TS-WH-S</td><td class=\"num\">2</td><td class=\"num\">5</td>", html)
