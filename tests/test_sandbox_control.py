"""The sandbox channels' control page (SPEC §9): each form changes what the channel's real API
answers next, over HTTP, as the demo serves it (``stocklink.sandbox.demo.sandbox_dispatcher``)."""
from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from stocklink.sandbox.colorme import ColorMeSandbox
from stocklink.sandbox.demo import CHANNELS_CONTROL_PATH, SMAREGI_CONTROL_PATH, sandbox_dispatcher
from stocklink.sandbox.nextengine import NextEngineSandbox
from stocklink.sandbox.shopify import ShopifySandbox, gid
from stocklink.sandbox.smaregi import SmaregiSandbox, serve_smaregi

SHOPIFY_API = "/shopify/admin/api/2026-04/graphql.json"


class Sandboxes:
    """The four sandboxes behind one loopback server, with one item on each channel and a
    token for each API."""

    def __init__(self) -> None:
        self.colorme, self.shopify = ColorMeSandbox(), ShopifySandbox()
        self.nextengine = NextEngineSandbox(rotate="on_expiry")
        self.server = serve_smaregi(sandbox_dispatcher(SmaregiSandbox(contract_id="demo"), self.colorme,
                                                       self.shopify, self.nextengine))
        self.url = self.server.url
        self.http = requests.Session()
        self.plain = self.colorme.add_product("マグカップ", stocks=5, model_number="MUG01")
        self.options = self.colorme.add_product("Tシャツ", model_number="TS01", variants=[
            {"option1_value": "ホワイト", "option2_value": "M", "stocks": 3, "model_number": "TS01-WH-M"}])
        self.cm_token = self.colorme.issue_token()
        self.item = self.shopify.add_item("MUG01", 5)
        self.sh_token = self.shopify.issue_token()
        self.nextengine.add_goods("MUG01", 5, name="マグカップ")
        self.ne_tokens = self.nextengine.login()

    def control(self, kind: str, control: str, **form) -> dict:
        """Submit one form of the page; answer the message or error it redirected to."""
        response = self.http.post(f"{self.url}{CHANNELS_CONTROL_PATH}{kind}/{control}", data=form,
                                  allow_redirects=False, timeout=10)
        assert response.status_code == 303
        location = urlsplit(response.headers["Location"])
        assert location.path == CHANNELS_CONTROL_PATH and location.fragment == kind
        return {k: v[0] for k, v in parse_qs(location.query).items()}

    def colorme_get(self, path: str, token: str | None = None) -> requests.Response:
        return self.http.get(f"{self.url}/colorme{path}", timeout=10,
                             headers={"Authorization": f"Bearer {token or self.cm_token}"})

    def shopify_available(self, token: str | None = None) -> requests.Response:
        item, location = gid("InventoryItem", self.item), gid("Location", self.shopify.default_location)
        query = (f'{{ inventoryItem(id: "{item}") {{ inventoryLevel(locationId: "{location}") '
                 '{ quantities(names: ["available"]) { name quantity } } } }')
        return self.http.post(f"{self.url}{SHOPIFY_API}", json={"query": query}, timeout=10,
                              headers={"X-Shopify-Access-Token": token or self.sh_token})

    def nextengine_stock(self) -> dict:
        response = self.http.post(f"{self.url}/nextengine/api_v1_master_stock/search", timeout=10, data={
            "access_token": self.ne_tokens["access_token"], "refresh_token": self.ne_tokens["refresh_token"],
            "fields": "stock_goods_id,stock_quantity", "stock_goods_id-eq": "MUG01"})
        body = response.json()
        if body.get("access_token"):
            self.ne_tokens = {k: body[k] for k in ("access_token", "refresh_token")}
        return body

    def page(self) -> str:
        return self.http.get(f"{self.url}{CHANNELS_CONTROL_PATH}", timeout=10).text

    def close(self) -> None:
        self.http.close()
        self.server.stop()


@pytest.fixture
def sandboxes():
    world = Sandboxes()
    yield world
    world.close()


def _colorme_stocks(sandboxes) -> dict[str, int]:
    rows = sandboxes.colorme_get("/v1/stocks.json").json()["stocks"]
    return {row["variant_model_number"] or row["model_number"]: row["stocks"] for row in rows}


def test_the_page_lists_every_channel_item_with_its_code_and_stock(sandboxes):
    """One page shows each channel with its items: the code a listing links by, and the stock."""
    page = html.unescape(sandboxes.page())
    for title in ("ColorMe Shop", "Shopify", "NextEngine"):
        assert title in page
    assert "TS01-WH-M" in page and "Tシャツ" in page
    assert f'value="{sandboxes.item}"' in page
    assert page.count('name="stock"') == 4  # MUG01 and TS01-WH-M on ColorMe, MUG01 on Shopify and NextEngine


def test_the_smaregi_and_channel_pages_link_to_each_other(sandboxes):
    """From the Smaregi control page a person reaches the channels' page, and back."""
    smaregi_page = sandboxes.http.get(f"{sandboxes.url}{SMAREGI_CONTROL_PATH}", timeout=10).text
    assert f'href="{CHANNELS_CONTROL_PATH}"' in smaregi_page
    assert f'href="{SMAREGI_CONTROL_PATH}"' in sandboxes.page()


def test_editing_colorme_stock_is_what_its_stock_api_then_answers(sandboxes):
    """A product's stock and an option's stock, edited on the page, are read back by GET /v1/stocks."""
    assert "message" in sandboxes.control("colorme", "stock", key=str(sandboxes.plain), stock="12")
    assert "message" in sandboxes.control("colorme", "stock", key=f"{sandboxes.options}/0", stock="0")
    assert _colorme_stocks(sandboxes) == {"MUG01": 12, "TS01-WH-M": 0}


@pytest.mark.parametrize("stock", ["abc", "-1", "1.5", "", "１２"])
def test_a_bad_stock_figure_is_refused_and_changes_nothing(sandboxes, stock):
    """Not a whole number ≥ 0: the page says why, and the channel's stock stays as it was."""
    answer = sandboxes.control("colorme", "stock", key=str(sandboxes.plain), stock=stock)
    assert "stock" in answer["error"] and "message" not in answer
    assert _colorme_stocks(sandboxes)["MUG01"] == 5


def test_an_unknown_item_or_a_product_with_options_is_refused(sandboxes):
    """Only an item that keeps stock can be edited; anything else is refused by name."""
    for key in ("999", f"{sandboxes.options}", f"{sandboxes.options}/7", "x/0"):
        assert key in sandboxes.control("colorme", "stock", key=key, stock="1")["error"]
    assert _colorme_stocks(sandboxes) == {"MUG01": 5, "TS01-WH-M": 3}


def test_colorme_maintenance_is_answered_by_its_api_until_switched_off(sandboxes):
    """In maintenance GET /v1/products answers ColorMe's maintenance error; afterwards it answers again."""
    sandboxes.control("colorme", "maintenance", on="1")
    assert "メンテナンス中 / in maintenance" in sandboxes.page()
    response = sandboxes.colorme_get("/v1/products")
    assert response.status_code == 503
    assert response.json()["errors"][0]["message"] == "ただいまメンテナンス中です。"
    sandboxes.control("colorme", "maintenance", on="0")
    assert sandboxes.colorme_get("/v1/products").status_code == 200


def test_revoking_colorme_tokens_makes_its_api_answer_401_and_a_new_one_works(sandboxes):
    """After "revoke" the token in use is refused with 401; a token issued on the page works."""
    sandboxes.control("colorme", "token", action="revoke")
    assert sandboxes.colorme_get("/v1/products").status_code == 401
    message = sandboxes.control("colorme", "token", action="issue")["message"]
    new_token = message.rsplit(" ", 1)[-1]
    assert sandboxes.colorme_get("/v1/products", token=new_token).status_code == 200


def test_failing_the_next_colorme_requests_fails_exactly_that_many(sandboxes):
    """"Fail the next 2" with 429: two requests are throttled (Retry-After), the third answers."""
    sandboxes.control("colorme", "fail", fault="429", count="2")
    answers = [sandboxes.colorme_get("/v1/products") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"]
    sandboxes.control("colorme", "fail", fault="500", count="1")
    assert sandboxes.colorme_get("/v1/products").status_code == 500


@pytest.mark.parametrize("form", [{"fault": "500", "count": "0"}, {"fault": "500", "count": "1001"},
                                  {"fault": "418", "count": "1"}, {"fault": "500", "count": "x"}])
def test_a_bad_failure_request_is_refused_and_nothing_fails(sandboxes, form):
    """A count outside 1–1000 or an unknown fault is refused; the API keeps answering."""
    assert "error" in sandboxes.control("colorme", "fail", **form)
    assert sandboxes.colorme_get("/v1/products").status_code == 200


def test_an_unknown_channel_or_token_action_is_refused(sandboxes):
    """No such channel: 404. No such token action: said on the page, tokens untouched."""
    response = sandboxes.http.post(f"{sandboxes.url}{CHANNELS_CONTROL_PATH}rakuten/maintenance", data={"on": "1"},
                                   allow_redirects=False, timeout=10)
    assert response.status_code == 404
    assert "error" in sandboxes.control("shopify", "token", action="expire_all")
    assert sandboxes.shopify_available().json()["data"]["inventoryItem"] is not None


def _shopify_quantity(response) -> int:
    level = response.json()["data"]["inventoryItem"]["inventoryLevel"]
    return level["quantities"][0]["quantity"]


def test_shopify_stock_maintenance_throttling_and_revoke_reach_its_graphql_api(sandboxes):
    """Edited stock is read back; maintenance is a 503; "throttled" is THROTTLED; revoke is a 401."""
    sandboxes.control("shopify", "stock", key=str(sandboxes.item), stock="19")
    assert _shopify_quantity(sandboxes.shopify_available()) == 19
    sandboxes.control("shopify", "maintenance", on="1")
    assert sandboxes.shopify_available().status_code == 503
    sandboxes.control("shopify", "maintenance", on="0")
    sandboxes.control("shopify", "fail", fault="throttled", count="1")
    assert sandboxes.shopify_available().json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert _shopify_quantity(sandboxes.shopify_available()) == 19
    sandboxes.control("shopify", "token", action="revoke")
    assert sandboxes.shopify_available().status_code == 401


def test_nextengine_stock_and_failures_reach_its_api(sandboxes):
    """Edited 在庫数 is what stock search answers; maintenance is 002007; "fail 2 × 003002" fails two calls."""
    sandboxes.control("nextengine", "stock", key="MUG01", stock="8")
    assert sandboxes.nextengine_stock()["data"] == [{"stock_goods_id": "MUG01", "stock_quantity": "8"}]
    sandboxes.control("nextengine", "maintenance", on="1")
    assert sandboxes.nextengine_stock()["code"] == "002007"
    sandboxes.control("nextengine", "maintenance", on="0")
    sandboxes.control("nextengine", "fail", fault="003002", count="2")
    assert [sandboxes.nextengine_stock().get("code") for _ in range(3)] == ["003002", "003002", None]


def test_nextengine_token_controls_expire_and_revoke_as_nextengine_does(sandboxes):
    """Expired access token: renewed by the refresh token. Both expired: redirect. Revoked: 002004."""
    sandboxes.control("nextengine", "token", action="expire_access")
    before = sandboxes.ne_tokens["access_token"]
    assert sandboxes.nextengine_stock()["result"] == "success"
    assert sandboxes.ne_tokens["access_token"] != before
    sandboxes.control("nextengine", "token", action="expire_all")
    assert sandboxes.nextengine_stock()["result"] == "redirect"
    sandboxes.control("nextengine", "token", action="revoke")
    assert sandboxes.nextengine_stock()["code"] == "002004"


def test_an_order_placed_on_the_page_takes_colorme_stock_and_its_cancel_gives_it_back(sandboxes):
    """"Place order" on ColorMe is a sale GET /v1/sales answers, the stock drops; "cancel" restocks it."""
    message = sandboxes.control("colorme", "order", identifier=f"{sandboxes.options}:ホワイト:M", quantity="2")
    assert "message" in message
    sales = sandboxes.colorme_get("/v1/sales").json()["sales"]
    [sale] = sales
    assert [(d["product_id"], d["option1_value"], d["product_num"]) for d in sale["details"]] == [
        (sandboxes.options, "ホワイト", 2)]
    assert _colorme_stocks(sandboxes)["TS01-WH-M"] == 1
    page = html.unescape(sandboxes.page())
    assert str(sale["id"]) in page and f"{sandboxes.options}:ホワイト:M × 2" in page
    assert "message" in sandboxes.control("colorme", "order/cancel", order_id=str(sale["id"]))
    assert sandboxes.colorme_get("/v1/sales").json()["sales"][0]["canceled"] is True
    assert _colorme_stocks(sandboxes)["TS01-WH-M"] == 3


def test_an_order_placed_on_the_page_is_a_nextengine_receive_order(sandboxes):
    """"Place order" on NextEngine is a 受注伝票 its row search answers; "cancel" sets the cancel flag."""
    assert "message" in sandboxes.control("nextengine", "order", identifier="MUG01", quantity="1")
    [summary] = sandboxes.nextengine.recent_orders()
    assert summary["lines"] == [("MUG01", 1)] and summary["order_id"] in sandboxes.page()
    assert "message" in sandboxes.control("nextengine", "order/cancel", order_id=summary["order_id"])
    response = sandboxes.http.post(f"{sandboxes.url}/nextengine/api_v1_receiveorder_row/search", timeout=10, data={
        "access_token": sandboxes.ne_tokens["access_token"], "refresh_token": sandboxes.ne_tokens["refresh_token"],
        "fields": "receive_order_row_goods_id,receive_order_row_cancel_flag"})
    assert response.json()["data"] == [{"receive_order_row_goods_id": "MUG01", "receive_order_row_cancel_flag": "1"}]


@pytest.mark.parametrize("form", [{"identifier": "999", "quantity": "1"}, {"identifier": "", "quantity": "1"},
                                  {"identifier": "100001", "quantity": "0"}, {"identifier": "100001", "quantity": "x"},
                                  {"identifier": "100001", "quantity": "6"}])
def test_an_order_the_shop_cannot_take_is_refused_on_the_page_and_changes_nothing(sandboxes, form):
    """Unknown item, no identifier, a bad quantity or more than the stock: said on the page, no sale."""
    assert "error" in sandboxes.control("colorme", "order", **form)
    assert sandboxes.colorme.sales == {} and _colorme_stocks(sandboxes)["MUG01"] == 5


def test_cancelling_an_unknown_order_is_refused_and_shopify_takes_orders_too(sandboxes):
    """An unknown order id is said on the page; Shopify's order takes its available stock, its
    cancel restocks it, and an unknown inventory item is refused."""
    assert "no such" in sandboxes.control("nextengine", "order/cancel", order_id="424242")["error"]
    assert "message" in sandboxes.control("shopify", "order", identifier=str(sandboxes.item), quantity="2")
    assert sandboxes.shopify.stock(sandboxes.item) == 3
    [summary] = sandboxes.shopify.recent_orders()
    assert summary["lines"] == [(str(sandboxes.item), 2)] and summary["order_id"] in sandboxes.page()
    assert "message" in sandboxes.control("shopify", "order/cancel", order_id=summary["order_id"])
    assert sandboxes.shopify.stock(sandboxes.item) == 5
    assert "error" in sandboxes.control("shopify", "order", identifier="999", quantity="1")


@pytest.mark.parametrize("kind", ["colorme", "shopify", "nextengine"])
def test_an_order_edited_on_the_page_changes_one_line_and_the_channels_stock(sandboxes, kind):
    """"Edit" sets one line's quantity (the rest stay); an unknown order is refused on the page."""
    identifier = {"colorme": str(sandboxes.plain), "shopify": str(sandboxes.item), "nextengine": "MUG01"}[kind]
    book = getattr(sandboxes, kind)
    assert "message" in sandboxes.control(kind, "order", identifier=identifier, quantity="2")
    [summary] = book.recent_orders()
    assert "message" in sandboxes.control(kind, "order/edit", order_id=summary["order_id"], identifier=identifier,
                                          quantity="1")
    [edited] = book.recent_orders()
    assert [(i, q) for i, q in edited["lines"] if q] == [(identifier, 1)]
    assert "error" in sandboxes.control(kind, "order/edit", order_id="424242", identifier=identifier, quantity="1")
