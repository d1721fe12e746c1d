"""The buttons above the product grid (seed 004 ■処理ボタン): 反映 selected, 連携 on/off for all of a
search on one channel, 商品削除 in stocklink only, CSV 出力 selected / all in the merchant's encoding."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.infra.queues import PUSH, get_queue
from stocklink.models import Listing, Product
from stocklink.services import merchant_settings
from stocklink.services.search_text import refresh_products
from tests.grid_helpers import make_shop


@pytest.fixture
def shop(app, logged_in):
    return make_shop(app)


def bulk(client, auth, action, ids=(), **filters):
    data = {"csrf_token": auth.token("/products/"), "action": action, "ids": [str(i) for i in ids],
            "next": "/products/?q=back", **{f"f_{k}": str(v) for k, v in filters.items()}}
    return client.post("/products/bulk", data=data)


def listings(app, channel_id):
    with app.app_context():
        return {(lst.product_id, lst.identifier): (lst.sync_enabled, lst.dirty, lst.difference)
                for lst in db.session.scalars(select(Listing).where(Listing.channel_id == channel_id))}


def pushes(app):
    with app.app_context():
        return set(get_queue(PUSH).job_ids)


def test_reflect_selected_clears_the_difference_and_pushes(app, client, logged_in, shop):
    """反映: the ticked products' listings on the chosen channel lose their difference and are pushed."""
    response = bulk(client, logged_in, "reflect", [shop.white], channel=shop.ch1)
    assert response.status_code == 303 and response.headers["Location"] == "/products/?q=back"
    assert listings(app, shop.ch1)[(shop.white, "101")] == (True, True, False)
    assert listings(app, shop.ch2)[(shop.white, "201")] == (True, False, False)  # another channel: untouched
    assert pushes(app) == {f"push-{shop.ch1}"}
    assert "1件の出品に在庫数を反映しています" in client.get("/products/?q=back").get_data(as_text=True)


def test_nothing_selected_is_said_and_changes_nothing(app, client, logged_in, shop):
    before = listings(app, shop.ch1)
    bulk(client, logged_in, "reflect")
    assert listings(app, shop.ch1) == before and pushes(app) == set()
    assert "商品を1つ以上選択してください" in client.get("/products/?q=back").get_data(as_text=True)


def test_sync_off_then_on_for_all_of_a_search_on_one_channel(app, client, logged_in, shop):
    """連携 for all: every listing of the searched products on the chosen channel, no other."""
    bulk(client, logged_in, "sync_off", channel=shop.ch1, q="Tシャツ")
    assert {k: v[0] for k, v in listings(app, shop.ch1).items()} == {(shop.white, "101"): False,
                                                                   (shop.black, "102"): False}
    assert all(v[0] for v in listings(app, shop.ch2).values() if v)
    bulk(client, logged_in, "sync_on", channel=shop.ch1, q="ホワイト")
    after = listings(app, shop.ch1)
    assert after[(shop.white, "101")][:2] == (True, True) and after[(shop.black, "102")][0] is False
    assert pushes(app) == {f"push-{shop.ch1}"}
    assert "カラーミーの1件の出品の連携をオンにしました" in client.get("/products/?q=back").get_data(as_text=True)


def test_sync_for_all_needs_a_channel(app, client, logged_in, shop):
    before = listings(app, shop.ch1)
    bulk(client, logged_in, "sync_off")
    assert listings(app, shop.ch1) == before
    assert "先に店舗を選んでください" in client.get("/products/?q=back").get_data(as_text=True)


def test_delete_removes_the_product_in_stocklink_only(app, client, logged_in, shop):
    """商品削除: the product goes; its listings stay, unlinked and not dirty (the channel item is untouched);
    a set's component is kept."""
    bulk(client, logged_in, "delete", [shop.black, shop.white, shop.linen + 1000])
    with app.app_context():
        assert db.session.get(Product, shop.black) is None
        assert db.session.get(Product, shop.white) is not None  # part of the gift set
        kept = db.session.scalars(select(Listing).where(Listing.identifier.in_(["102", "202"]))).all()
        assert [(lst.product_id, lst.dirty) for lst in kept] == [(None, False), (None, False)]
    page = client.get("/products/?q=back").get_data(as_text=True)
    assert "1件の商品をstocklinkから削除しました" in page and "セット商品の構成品" in page
    assert pushes(app) == set()


def export(client, query=""):
    response = client.get(f"/products/export.csv?{query}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return response


def test_csv_all_is_the_whole_search_in_utf8_with_a_bom(app, client, logged_in, shop):
    """CSV すべて: every product the search finds (not only a page), UTF-8 with a BOM when so set."""
    with app.app_context():
        merchant_settings.save({"csv.encoding": "utf-8"})
    body = export(client, f"q=シャツ&channel={shop.ch1}").data
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:6] == ["商品コード", "スマレジ商品ID", "名称", "バリエーション", "セット", "総在庫数"]
    assert rows[0][6] == "カラーミー 連携" and len(rows[0]) == 14
    assert [r[0] for r in rows[1:]] == ["TS-WH-S", "TS-BK-M", "LN-01"]
    assert rows[1][6:] == ["1", "", "", "0", "100", "SKU-ABC1", "4", "1"]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised_and_cp932_never_fails(app, client, logged_in,
                                                                                     shop):
    """A name beginning with = gets a leading '; a character CP932 cannot hold becomes ? (default CP932)."""
    with app.app_context():
        linen = db.session.get(Product, shop.linen)
        linen.name = '=HYPERLINK("http://evil.example","x")'
        db.session.get(Product, shop.cotton).name = "@SUM(1) 🍣 コットン"
        refresh_products([shop.linen, shop.cotton])
        db.session.commit()
    body = export(client).data
    assert not body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("cp932"))))
    names = {r[0]: r[2] for r in rows[1:]}
    assert names["LN-01"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert names["C_100"] == "'@SUM(1) ? コットン"
    assert len(rows) == 6 and len(rows[0]) == 6 + 8 * 2


def test_csv_selected_is_the_ticked_rows(app, client, logged_in, shop):
    response = bulk(client, logged_in, "csv_selected", [shop.cotton, shop.white])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.data.decode("cp932"))))
    assert [r[0] for r in rows[1:]] == ["TS-WH-S", "C_100"]
