"""Inline edits in the product grid (seed 004 総在庫数・連携・最小・最大, SPEC §11.7 reserve and ratio):
each validated, a refused value changing nothing, and the total written to Smaregi and on to every channel."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.infra.queues import PUSH, get_queue
from stocklink.models import Listing, Product, StockLedger
from stocklink.services import merchant_settings
from tests.e2e_helpers import use_generation
from tests.grid_helpers import SWAP, make_shop

pytest_plugins = ["tests.fixtures_platforms"]


@pytest.fixture
def shop(app, logged_in):
    return make_shop(app)


def post(client, auth, url, value, *, channel=None, htmx=True, token=True, **extra):
    headers = dict(SWAP) if htmx else {}
    data = {"value": value, "next": "/products/?q=x", **extra}
    if channel:
        data["channel"] = str(channel)
    if token:
        data["csrf_token"] = auth.token("/products/")
    return client.post(url, data=data, headers=headers)


def listing_row(app, listing_id):
    with app.app_context():
        listing = db.session.get(Listing, listing_id)
        return (listing.sync_enabled, listing.min_stock, listing.max_stock, listing.reserve, listing.ratio_percent,
                listing.dirty)


def queued_pushes(app) -> set[str]:
    with app.app_context():
        return set(get_queue(PUSH).job_ids)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("min_stock", "5", (True, 5, None, 0, 100, True)),  # 5 at or below the minimum 5: the push becomes 0
    ("min_stock", "2", (True, 2, None, 0, 100, False)),  # still 5: nothing to push
    ("max_stock", "３", (True, None, 3, 0, 100, True)),  # full-width digits, as an IME types them
    ("reserve", "2", (True, None, None, 2, 100, True)),
    ("ratio_percent", "50", (True, None, None, 0, 50, True)),
    ("min_stock", "", (True, None, None, 0, 100, False)),
    ("sync", "off", (False, None, None, 0, 100, False)),
])
def test_a_listing_setting_is_saved_and_the_row_comes_back(app, client, logged_in, shop, field, value, expected):
    """A valid value is stored; only a change of what the push would write marks the listing and queues a push."""
    response = post(client, logged_in, f"/products/listings/{shop.white_ch1}/{field}", value, channel=shop.ch1)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.startswith(f'<tr id="product-{shop.white}"') and "<html" not in html
    assert 'class="error"' not in html
    assert listing_row(app, shop.white_ch1) == expected
    assert (f"push-{shop.ch1}" in queued_pushes(app)) is expected[-1]


def test_turning_sync_on_pushes_the_listing(app, client, logged_in, shop):
    """A listing switched on is marked for its channel's push, and the row shows what the push will write."""
    with app.app_context():
        db.session.get(Product, shop.black).smaregi_stock = 4
        db.session.commit()
    response = post(client, logged_in, f"/products/listings/{shop.black_ch1}/sync", "on", channel=shop.ch1)
    assert response.status_code == 200
    assert listing_row(app, shop.black_ch1)[0] is True and listing_row(app, shop.black_ch1)[-1] is True
    assert f"push-{shop.ch1}" in queued_pushes(app)
    assert "→ 4" in response.get_data(as_text=True)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("min_stock", "abc", "整数"),
    ("min_stock", "-1", "整数"),
    ("min_stock", "1.5", "整数"),
    ("max_stock", "99999999999", "整数"),
    ("ratio_percent", "150", "割当率"),
    ("reserve", "x", "整数"),
])
def test_a_refused_value_changes_nothing(app, client, logged_in, shop, field, value, message):
    """A value that cannot be used comes back written in its cell; the listing is as it was, nothing is queued."""
    before = listing_row(app, shop.white_ch1)
    response = post(client, logged_in, f"/products/listings/{shop.white_ch1}/{field}", value, channel=shop.ch1)
    assert response.status_code == 200
    [error] = re.findall(r'<small class="error" role="alert">([^<]*)</small>', response.get_data(as_text=True))
    assert message in error
    assert listing_row(app, shop.white_ch1) == before
    assert queued_pushes(app) == set()


def test_the_minimum_may_not_pass_the_maximum(app, client, logged_in, shop):
    """Min above max, or max below min, is refused with both figures named."""
    assert post(client, logged_in, f"/products/listings/{shop.white_ch1}/max_stock", "3").status_code == 200
    html = post(client, logged_in, f"/products/listings/{shop.white_ch1}/min_stock", "4",
                channel=shop.ch1).get_data(as_text=True)
    assert "最小在庫数は最大在庫数（3）より大きくできません" in html
    post(client, logged_in, f"/products/listings/{shop.white_ch1}/min_stock", "2")
    html = post(client, logged_in, f"/products/listings/{shop.white_ch1}/max_stock", "1",
                channel=shop.ch1).get_data(as_text=True)
    assert "最大在庫数は最小在庫数（2）より小さくできません" in html
    assert listing_row(app, shop.white_ch1)[1:3] == (2, 3)


def test_without_javascript_the_edit_goes_back_to_the_grid_with_a_message(app, client, logged_in, shop):
    """A plain form post is answered 303 to the grid it came from, the result flashed there."""
    response = post(client, logged_in, f"/products/listings/{shop.white_ch1}/reserve", "1", htmx=False)
    assert response.status_code == 303 and response.headers["Location"] == "/products/?q=x"
    assert "保存しました" in client.get("/products/?q=x").get_data(as_text=True)
    response = post(client, logged_in, f"/products/listings/{shop.white_ch1}/reserve", "z", htmx=False,
                    next="https://evil.example/")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert listing_row(app, shop.white_ch1)[3] == 1


@pytest.mark.parametrize("url", ["/products/listings/{l}/min_stock", "/products/{p}/total", "/products/bulk"])
def test_every_post_needs_the_csrf_token(app, client, logged_in, shop, url):
    """Without the token the post is refused (400) and nothing changes."""
    before = listing_row(app, shop.white_ch1)
    response = post(client, logged_in, url.format(l=shop.white_ch1, p=shop.white), "1", token=False,
                    action="delete", ids=str(shop.white))
    assert response.status_code == 400
    assert listing_row(app, shop.white_ch1) == before
    with app.app_context():
        assert db.session.get(Product, shop.white).smaregi_stock == 5


def test_unknown_listing_or_setting_is_404(client, logged_in, shop):
    assert post(client, logged_in, "/products/listings/999/min_stock", "1").status_code == 404
    assert post(client, logged_in, f"/products/listings/{shop.white_ch1}/identifier", "1").status_code == 404


def test_a_set_total_is_not_editable_here(app, client, logged_in, shop):
    """A set's figure comes from its components: the total cell is not a form, and a post is refused."""
    html = client.get("/products/?kind=set").get_data(as_text=True)
    assert f'action="/products/{shop.gift}/total"' not in html
    response = post(client, logged_in, f"/products/{shop.gift}/total", "3")
    assert "構成品" in response.get_data(as_text=True)


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_total_typed_in_the_grid_reaches_smaregi_and_every_channel(app, world, jobs_runner, client, logged_in,
                                                                     generation):
    """Setting 総在庫数 writes Smaregi, reads it back, books it in the ledger with the operator's name, and
    every channel gets the new figure."""
    use_generation(app, world.smaregi, generation)
    item = world.add("8300001", "GRID01", "グリッド靴下", 10)
    response = post(client, logged_in, f"/products/{item['product']}/total", "7")
    assert response.status_code == 200 and 'class="error"' not in response.get_data(as_text=True)
    assert world.smaregi.stock_of("8300001") == 7
    with app.app_context():
        [entry] = db.session.scalars(select(StockLedger)).all()
        assert (entry.before, entry.after, entry.actor, entry.cause) == (10, 7, "operator", "merchant:grid_total")
    jobs_runner()
    assert world.channel_stock("8300001") == (7, 7)
    history = client.get(f"/products/{item['product']}").get_data(as_text=True)
    assert "商品一覧で総在庫数を変更" in history


def test_a_total_is_counted_with_the_reserved_quantity(app, world, jobs_runner, client, logged_in):
    """Total = Smaregi stock − reserved: a total of 7 with 2 reserved asks Smaregi to hold 9."""
    item = world.add("8300002", "GRID02", "予約品", 10)
    with app.app_context():
        db.session.get(Product, item["product"]).reserved = 2
        db.session.commit()
    post(client, logged_in, f"/products/{item['product']}/total", "7")
    assert world.smaregi.stock_of("8300002") == 9
    with app.app_context():
        assert db.session.get(Product, item["product"]).total == 7


@pytest.mark.parametrize("value", ["abc", "-3", ""])
def test_a_refused_total_changes_nothing_anywhere(app, world, client, logged_in, value):
    """A total that is not a whole number is refused before Smaregi is asked: no write, no ledger row."""
    item = world.add("8300003", "GRID03", "帆布", 10)
    html = post(client, logged_in, f"/products/{item['product']}/total", value).get_data(as_text=True)
    assert "0から999,999,999までの整数" in html
    assert world.smaregi.stock_of("8300003") == 10
    with app.app_context():
        assert db.session.scalars(select(StockLedger)).all() == []
        assert queued_pushes(app) == set()


def test_smaregi_refusing_the_total_changes_nothing(app, world, client, logged_in):
    """Credentials Smaregi refuses: the message says so, stocklink's stock and the ledger stay as they were."""
    item = world.add("8300004", "GRID04", "石鹸", 10)
    with app.app_context():
        merchant_settings.save({"smaregi.access_token": "wrong-token"})
    html = post(client, logged_in, f"/products/{item['product']}/total", "3").get_data(as_text=True)
    assert "スマレジに在庫数を登録できませんでした" in html
    assert world.smaregi.stock_of("8300004") == 10
    with app.app_context():
        assert db.session.get(Product, item["product"]).smaregi_stock == 10
        assert db.session.scalars(select(StockLedger)).all() == []


def test_a_products_low_stock_threshold_is_edited_inline_in_the_grid(app, client, logged_in):
    """The grid's threshold cell: a full-width number is saved and the row comes back with it; a
    bad value is named in the row and nothing changes; blank goes back to the common threshold."""
    from tests.e2e_helpers import add_product
    product_id = add_product(app, "9001", "TH-1", "しきい値テスト", stock=4)
    token = logged_in.token("/products/")
    url = f"/products/{product_id}/threshold"
    row = client.post(url, data={"csrf_token": token, "value": "３", "next": "/products/"},
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert row.startswith("<tr") and 'value="3"' in row
    bad = client.post(url, data={"csrf_token": token, "value": "-2", "next": "/products/"},
                      headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'role="alert"' in bad
    with app.app_context():
        assert db.session.get(Product, product_id).low_stock_threshold == 3
    client.post(url, data={"csrf_token": token, "value": "", "next": "/products/"}, headers={"HX-Request": "true"})
    with app.app_context():
        assert db.session.get(Product, product_id).low_stock_threshold is None
