"""Channel catalogue reads (``list_catalogue``) against each channel's sandbox over real HTTP on
loopback: every item and variant over several pages, the link code, the channel's stock, an
identifier the client's own ``read_stock`` takes, ``catalogue_total``, and the client's errors."""
from __future__ import annotations

import json
import time

import pytest
import requests

from stocklink.platforms.base import AuthError, TemporaryError
from stocklink.platforms.colorme import ColorMeClient, make_identifier
from stocklink.platforms.interfaces import CatalogueLister, ChannelItem
from stocklink.platforms.nextengine import NextEngineClient
from stocklink.platforms.shopify import ShopifyClient
from stocklink.sandbox.colorme import ColorMeSandbox
from stocklink.sandbox.colorme import create_app as colorme_app
from stocklink.sandbox.nextengine import NextEngineSandbox
from stocklink.sandbox.nextengine import create_app as nextengine_app
from stocklink.sandbox.server import serve_in_thread
from stocklink.sandbox.shopify import ShopifySandbox
from stocklink.sandbox.shopify import create_app as shopify_app


def _served(sandbox, app):
    server = serve_in_thread(app(sandbox))
    sandbox.url = server.url
    return server


@pytest.fixture
def sessions():
    """Requests sessions for the clients of one test, closed after it."""
    opened: list[requests.Session] = []

    def new() -> requests.Session:
        opened.append(requests.Session())
        return opened[-1]

    yield new
    for session in opened:
        session.close()


@pytest.fixture
def shop():
    """A ColorMe shop on loopback."""
    sandbox = ColorMeSandbox()
    server = _served(sandbox, colorme_app)
    yield sandbox
    server.stop()


@pytest.fixture
def store():
    """A Shopify store on loopback."""
    sandbox = ShopifySandbox()
    server = _served(sandbox, shopify_app)
    yield sandbox
    server.stop()


@pytest.fixture
def ne():
    """A NextEngine company on loopback (tokens rotate on every call)."""
    sandbox = NextEngineSandbox()
    server = _served(sandbox, nextengine_app)
    yield sandbox
    server.stop()


def api_requests(sandbox, path: str) -> list[dict]:
    return [r for r in sandbox.requests if r["path"] == path]


# ColorMe ---------------------------------------------------------------------------------------

def colorme_client(shop, sessions, token=None) -> ColorMeClient:
    return ColorMeClient(shop.url, {"access_token": token or shop.issue_token()}, session=sessions())


def test_colorme_lists_products_and_variants_over_pages(shop, sessions):
    """ColorMe: 60 products (two pages of 50) yield one item per plain product and one per variant,
    coded by 型番, with stock, option labels and the ids a push needs; catalogue_total counts products."""
    shirt = shop.add_product("Tシャツ", model_number="TS", image_url="http://127.0.0.1/img/ts.png", variants=[
        {"option1_value": "ホワイト", "option2_value": "S", "stocks": 4, "model_number": "TS-WH-S"},
        {"option1_value": "ホワイト", "option2_value": "M", "stocks": 0, "model_number": ""}])
    cap = shop.add_product("帽子", variants=[{"option1_value": "赤", "stocks": 2, "model_number": "CP-R"}])
    plain = [shop.add_product(f"商品{i}", stocks=i, model_number=f"P-{i:03d}") for i in range(57)]
    unmanaged = shop.add_product("ラッピング", model_number="WRAP", stock_managed=False)
    client = colorme_client(shop, sessions)
    assert isinstance(client, CatalogueLister) and client.catalogue_total is None
    items = list(client.list_catalogue())
    assert client.catalogue_total == 60
    assert len(api_requests(shop, "/v1/products.json")) == 2
    assert len(items) == 61 and len({i.identifier for i in items}) == 61
    by_id = {i.identifier: i for i in items}
    white_s = by_id[make_identifier(shirt, "ホワイト", "S")]
    assert (white_s.name, white_s.variation, white_s.code, white_s.stock) == ("Tシャツ", "ホワイト / S", "TS-WH-S", 4)
    assert white_s.image_url == "http://127.0.0.1/img/ts.png"
    assert white_s.extra == {"product_id": shirt, "option1_value": "ホワイト", "option2_value": "S",
                             "stock_managed": True}
    assert by_id[make_identifier(shirt, "ホワイト", "M")].code is None  # a variant without 型番
    red = by_id[make_identifier(cap, "赤")]
    assert (red.variation, red.code, red.stock) == ("赤", "CP-R", 2)
    assert (by_id[str(plain[5])].code, by_id[str(plain[5])].stock, by_id[str(plain[5])].variation) == ("P-005", 5, None)
    assert (by_id[str(unmanaged)].code, by_id[str(unmanaged)].stock) == ("WRAP", None)
    assert str(shirt) not in by_id  # an option-managed product is listed by its variants only
    json.dumps([i.extra for i in items])


def test_colorme_identifiers_round_trip_through_read_stock(shop, sessions):
    """ColorMe: every identifier list_catalogue gives reads back the same stock with read_stock."""
    shop.add_product("Tシャツ", variants=[{"option1_value": "赤:特", "option2_value": "S%", "stocks": 3},
                                        {"option1_value": "青", "stocks": 1}])
    shop.add_product("靴下", stocks=7)
    client = colorme_client(shop, sessions)
    items = list(client.list_catalogue())
    assert client.read_stock([i.identifier for i in items]) == {i.identifier: i.stock for i in items}
    assert sorted(i.stock for i in items) == [1, 3, 7]


def test_colorme_revoked_token_is_an_auth_error(shop, sessions):
    """ColorMe: a token revoked during an import raises AuthError."""
    shop.add_product("靴下", stocks=1)
    token = shop.issue_token()
    shop.revoke_token(token)
    with pytest.raises(AuthError):
        list(colorme_client(shop, sessions, token).list_catalogue())


def test_colorme_throttled_page_is_sent_again(shop, sessions):
    """ColorMe: a page answered 429 is sent again after Retry-After and the listing completes."""
    shop.add_product("靴下", stocks=1)
    shop.throttle_next(1)
    assert [i.stock for i in colorme_client(shop, sessions).list_catalogue()] == [1]
    assert len(api_requests(shop, "/v1/products.json")) == 2


def test_colorme_lasting_outage_is_temporary(shop, sessions):
    """ColorMe: maintenance during an import raises TemporaryError, not a partial silent end."""
    shop.add_product("靴下", stocks=1)
    shop.set_maintenance(True)
    with pytest.raises(TemporaryError):
        list(colorme_client(shop, sessions).list_catalogue())


def test_colorme_paces_between_pages(shop, sessions, monkeypatch):
    """ColorMe: pace_s is slept between page requests, not before the first."""
    for i in range(51):
        shop.add_product(f"商品{i}", stocks=1)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    assert len(list(colorme_client(shop, sessions).list_catalogue(pace_s=0.25))) == 51
    assert slept == [0.25]


# Shopify ---------------------------------------------------------------------------------------

def shopify_client(store, sessions, token=None, page=3) -> ShopifyClient:
    client = ShopifyClient(store.url, {"access_token": token or store.issue_token()},
                           {"location_id": store.default_location}, session=sessions())
    client.catalogue_page = page
    return client


def test_shopify_lists_variants_over_cursor_pages(store, sessions):
    """Shopify: every variant over several cursor pages, coded by sku, with available at the location,
    None when inventory is not tracked or not stocked there, and the ids a push needs."""
    tee = store.add_product("Tシャツ", image_url="http://127.0.0.1/img/tee.png", variants=[
        {"title": "ホワイト / S", "sku": "TS-WH-S", "available": 4},
        {"title": "ホワイト / M", "sku": "TS-WH-M", "available": 0},
        {"title": "ブラック / S", "sku": "", "available": 2, "image_url": "http://127.0.0.1/img/black.png"}])
    plain = store.add_item("MUG-01", 9)
    untracked = store.add_item("GIFT", 5, tracked=False)
    elsewhere = store.add_item("FAR", 3, store.add_location("倉庫2"))
    client = shopify_client(store, sessions, page=2)
    assert isinstance(client, CatalogueLister)
    items = list(client.list_catalogue())
    assert client.catalogue_total == 6
    assert len(api_requests(store, "/admin/api/2026-04/graphql.json")) == 3
    by_id = {i.identifier: i for i in items}
    assert list(by_id) == [str(n) for n in (*tee, plain, untracked, elsewhere)]
    white_s = by_id[str(tee[0])]
    assert (white_s.name, white_s.variation, white_s.code, white_s.stock) == ("Tシャツ", "ホワイト / S", "TS-WH-S", 4)
    assert white_s.image_url == "http://127.0.0.1/img/tee.png"
    assert white_s.extra["inventory_item_id"] == f"gid://shopify/InventoryItem/{tee[0]}"
    assert white_s.extra["variant_id"].startswith("gid://shopify/ProductVariant/")
    assert white_s.extra["product_id"].startswith("gid://shopify/Product/") and white_s.extra["tracked"]
    assert (by_id[str(tee[2])].code, by_id[str(tee[2])].image_url) == (None, "http://127.0.0.1/img/black.png")
    mug = by_id[str(plain)]
    assert (mug.name, mug.variation, mug.code, mug.stock, mug.image_url) == ("MUG-01", None, "MUG-01", 9, None)
    assert (by_id[str(untracked)].stock, by_id[str(untracked)].extra["tracked"]) == (None, False)
    assert by_id[str(elsewhere)].stock is None
    json.dumps([i.extra for i in items])


def test_shopify_identifiers_round_trip_through_read_stock(store, sessions):
    """Shopify: the identifiers list_catalogue gives are what read_stock reads."""
    store.add_product("靴下", variants=[{"title": "23-25", "sku": "SK-1", "available": 3},
                                      {"title": "25-27", "sku": "SK-2", "available": 8}])
    client = shopify_client(store, sessions)
    items = list(client.list_catalogue())
    assert client.read_stock([i.identifier for i in items]) == {i.identifier: i.stock for i in items}


def test_shopify_revoked_token_is_an_auth_error(store, sessions):
    """Shopify: a revoked token raises AuthError."""
    store.add_item("A-1", 1)
    token = store.issue_token()
    store.revoke_token(token)
    with pytest.raises(AuthError):
        list(shopify_client(store, sessions, token).list_catalogue())


def test_shopify_throttled_page_is_sent_again(store, sessions):
    """Shopify: a THROTTLED page is sent again after the wait its cost block implies."""
    store.add_item("A-1", 1)
    store.throttle_next(1)
    assert [i.code for i in shopify_client(store, sessions).list_catalogue()] == ["A-1"]
    assert len(api_requests(store, "/admin/api/2026-04/graphql.json")) == 2


def test_shopify_lasting_throttle_is_temporary(store, sessions):
    """Shopify: a page still THROTTLED after the retries raises TemporaryError(THROTTLED)."""
    store.add_item("A-1", 1)
    store.throttle_next(10)
    with pytest.raises(TemporaryError) as caught:
        list(shopify_client(store, sessions).list_catalogue())
    assert caught.value.code == "THROTTLED" and caught.value.retry_after


def test_shopify_waits_for_the_bucket_between_pages(store, sessions, monkeypatch):
    """Shopify: when the bucket holds less than the next page costs, the client waits for it to
    refill instead of meeting THROTTLED."""
    for i in range(6):
        store.add_item(f"A-{i}", i)
    store.set_bucket(50, 100)  # a page of two variants costs ~30 points: the next must wait
    slept: list[float] = []
    real_sleep = time.sleep

    def recording_sleep(seconds):
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    items = list(shopify_client(store, sessions, page=2).list_catalogue())
    assert [i.code for i in items] == [f"A-{i}" for i in range(6)]
    assert len(api_requests(store, "/admin/api/2026-04/graphql.json")) == 3  # none refused
    assert slept and all(0 < s < 1 for s in slept)


def test_shopify_sandbox_charges_connections_by_page_size(store):
    """The Shopify sandbox costs a connection 2 + first × node cost and refuses first > 250."""
    def post(query, variables):
        with requests.Session() as s:
            return s.post(f"{store.url}/admin/api/2026-04/graphql.json", json={"query": query, "variables": variables},
                          headers={"X-Shopify-Access-Token": store.issue_token()}).json()
    query = "query($n: Int!) { productVariants(first: $n) { nodes { id inventoryItem { id } } } }"
    small, large = post(query, {"n": 1}), post(query, {"n": 10})
    assert small["extensions"]["cost"]["requestedQueryCost"] < large["extensions"]["cost"]["requestedQueryCost"]
    assert "250" in post(query, {"n": 251})["errors"][0]["message"]


# NextEngine ------------------------------------------------------------------------------------

def nextengine_client(ne, sessions, credentials=None, page=2, saved=None) -> NextEngineClient:
    client = NextEngineClient(ne.url, credentials or ne.login(), session=sessions(),
                              on_credentials=saved.append if saved is not None else None)
    client.catalogue_page = page
    return client


def test_nextengine_lists_goods_over_pages(ne, sessions):
    """NextEngine: every goods record not deleted, over offset/limit pages, coded by 商品コード, with
    its stock; catalogue_total from the goods count."""
    for code, stock in (("TS-WH-S", 4), ("TS-WH-M", 0), ("MUG-01", 9), ("BAG-01", 2), ("CAP-01", 1),
                        ("OLD-01", 5)):
        ne.add_goods(code, stock, name=f"{code}の商品", representation_id=code.split("-")[0])
    ne.delete_goods("OLD-01")  # deleted goods are not part of the catalogue
    saved: list[dict] = []
    client = nextengine_client(ne, sessions, saved=saved)
    assert isinstance(client, CatalogueLister)
    items = list(client.list_catalogue())
    assert client.catalogue_total == 5
    assert [i.identifier for i in items] == ["BAG-01", "CAP-01", "MUG-01", "TS-WH-M", "TS-WH-S"]
    assert [(i.code, i.stock) for i in items] == [("BAG-01", 2), ("CAP-01", 1), ("MUG-01", 9),
                                                  ("TS-WH-M", 0), ("TS-WH-S", 4)]
    assert items[-1].name == "TS-WH-Sの商品" and items[-1].extra == {"goods_representation_id": "TS"}
    assert len(api_requests(ne, "/api_v1_master_goods/search")) == 3
    assert saved and saved[-1]["access_token"] == ne.current_tokens()["access_token"]  # rotations kept


def test_nextengine_identifiers_round_trip_through_read_stock(ne, sessions):
    """NextEngine: the identifiers list_catalogue gives are what read_stock reads."""
    ne.add_goods("A-1", 3)
    ne.add_goods("B-2", 5)
    client = nextengine_client(ne, sessions)
    items = list(client.list_catalogue())
    assert client.read_stock([i.identifier for i in items]) == {"A-1": 3, "B-2": 5}


def test_nextengine_expired_login_is_an_auth_error(ne, sessions):
    """NextEngine: both tokens expired during an import (result redirect) raises AuthError."""
    ne.add_goods("A-1", 3)
    credentials = ne.login()
    ne.expire_tokens()
    with pytest.raises(AuthError):
        list(nextengine_client(ne, sessions, credentials).list_catalogue())


def test_nextengine_overload_is_temporary(ne, sessions):
    """NextEngine: an overloaded page (003002) raises TemporaryError with a retry_after."""
    for code in ("A-1", "B-2", "C-3"):
        ne.add_goods(code, 1)
    client = nextengine_client(ne, sessions)
    listing = client.list_catalogue()
    next(listing)
    ne.error_next(1, "003002")
    with pytest.raises(TemporaryError) as caught:
        list(listing)
    assert caught.value.code == "003002" and caught.value.retry_after


def test_nextengine_throttled_page_is_sent_again(ne, sessions):
    """NextEngine: an HTTP 429 page is sent again and the listing completes."""
    ne.add_goods("A-1", 3)
    ne.fail_next(1, 429)
    items = list(nextengine_client(ne, sessions).list_catalogue())
    assert [i.identifier for i in items] == ["A-1"]


def test_items_are_channel_items(shop, sessions):
    """list_catalogue yields ChannelItem values."""
    shop.add_product("靴下", stocks=1)
    assert all(isinstance(i, ChannelItem) for i in colorme_client(shop, sessions).list_catalogue())


def test_sample_catalogue_images_are_valid_pngs():
    """The sample catalogue's image data: URLs decode to well-formed PNGs (valid chunk CRCs and
    pixel data), and some sample products have no image."""
    import base64
    import struct
    import zlib

    from stocklink.sandbox.catalogue import sample_products

    products = sample_products()
    urls = {p.image_url for p in products if p.image_url}
    assert urls and any(p.image_url is None for p in products)
    for url in urls:
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.partition(",")[2], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        pos, chunks = 8, {}
        while pos < len(png):
            (length,) = struct.unpack(">I", png[pos:pos + 4])
            kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
            (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
            assert crc == zlib.crc32(kind + data)
            chunks[kind] = data
            pos += 12 + length
        width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
        assert (depth, colour) == (8, 2) and len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + 3 * width)
        assert set(chunks) == {b"IHDR", b"IDAT", b"IEND"}
