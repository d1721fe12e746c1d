"""The Smaregi sandbox: wire shapes of both APIs, stock notifications, send history, control surface."""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
import requests
from flask import Flask, request

from stocklink.platforms.smaregi import LegacySmaregiClient, PlatformSmaregiClient
from stocklink.sandbox.catalogue import sample_products
from stocklink.sandbox.server import serve_in_thread
from stocklink.sandbox.smaregi import WEBHOOK_USER_AGENT, create_app, serve_smaregi
from tests.e2e_helpers import CLIENT_ID, CLIENT_SECRET, CONTRACT, TOKEN

pytest_plugins = ["tests.fixtures_platforms"]
pytestmark = pytest.mark.usefixtures("smaregi_sample")  # every test here starts from the sample catalogue

A, B, C = "8000001", "8000002", "8000003"
UNMANAGED = "8000055"


@dataclass
class Receiver:
    """A stand-in for stocklink's webhook endpoint that records what it is sent."""

    url: str = ""
    status: int = 200
    received: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver():
    state = Receiver()
    app = Flask("receiver")

    @app.post("/webhooks/smaregi/<code>")
    def webhook(code):
        with state.lock:
            state.received.append({"code": code, "headers": dict(request.headers), "body": request.get_data(),
                                   "form": request.form.to_dict()})
        return ({"result": "ok"} if state.status == 200 else "code_mismatch"), state.status

    running = serve_smaregi(app)  # keeps X_contract_id, as Smaregi's receivers see it
    state.url = f"{running.url}/webhooks/smaregi/CUST01"
    yield state
    running.stop()


def legacy_call(http, smaregi_server, proc_name: str, params: dict, headers: dict | None = None) -> requests.Response:
    headers = headers or {"X_contract_id": CONTRACT, "X_access_token": TOKEN}
    return http.post(f"{smaregi_server.url}/access/", headers=headers,
                     data={"proc_name": proc_name, "params": json.dumps(params)})


@pytest.fixture
def bearer(http, smaregi_server) -> dict:
    answer = http.post(f"{smaregi_server.url}/app/{CONTRACT}/token", auth=(CLIENT_ID, CLIENT_SECRET),
                       data={"grant_type": "client_credentials", "scope": "pos.products:read pos.stock:read "
                             "pos.stock:write pos.stock-changes:read"})
    assert answer.status_code == 200
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def pos(smaregi_server, path: str) -> str:
    return f"{smaregi_server.url}/{CONTRACT}/pos{path}"


def test_sale_of_three_lines_is_one_legacy_notification_with_three_rows(smaregi_sandbox, receiver):
    """A POS sale of A×2, B×3, C×1 sends one legacy form POST with three Stock rows (division 02)."""
    smaregi_sandbox.configure(notify_url=receiver.url, notify_mode="legacy")
    before = {pid: smaregi_sandbox.stock_of(pid) for pid in (A, B, C)}
    smaregi_sandbox.sell([(A, 2), (B, 3), (C, 1)])
    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got["code"] == "CUST01"
    assert got["headers"]["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert got["headers"]["X-Contract-Id"] == CONTRACT and got["headers"]["X-Access-Token"] == TOKEN
    assert got["form"]["proc_name"] == "stock_upd"
    data = json.loads(got["form"]["params"])["data"]
    assert [d["table_name"] for d in data] == ["Stock"]
    rows = data[0]["rows"]
    assert [(r["productId"], r["amount"], r["stockDivision"]) for r in rows] == [
        (A, "-2", "02"), (B, "-3", "02"), (C, "-1", "02")]
    assert rows[1]["stockAmount"] == str(before[B] - 3)
    assert set(rows[0]) == {"storeId", "productId", "amount", "stockAmount", "layawayStockAmount",
                            "stockDivision", "fromStoreId", "toStoreId", "updDateTime"}
    assert all(isinstance(v, str) for r in rows for v in r.values())
    assert len(rows[0]["updDateTime"]) == 19  # YYYY-MM-DD HH:MM:SS JST
    assert smaregi_sandbox.sends[0].status == "success" and smaregi_sandbox.sends[0].last.status == 200


def test_platform_webhook_has_smaregi_headers_and_ids(smaregi_sandbox, receiver):
    """A Platform-mode notification is JSON pos:stock/edited with ids[] and the Smaregi-* headers."""
    smaregi_sandbox.configure(notify_url=receiver.url, notify_mode="platform",
                      webhook_secret_header="x-sdsch-secret", webhook_secret="s3cret")
    changes = smaregi_sandbox.sell([(A, 2), (B, 3), (C, 1)])
    [got] = receiver.received
    headers = got["headers"]
    assert headers["Smaregi-Event"] == "pos:stock" and headers["Smaregi-Contract-Id"] == CONTRACT
    assert uuid.UUID(headers["Smaregi-Event-Id"]).version == 4
    assert headers["User-Agent"] == WEBHOOK_USER_AGENT and headers["X-Sdsch-Secret"] == "s3cret"
    assert json.loads(got["body"]) == {
        "contractId": CONTRACT, "event": "pos:stock", "action": "edited",
        "ids": [{"id": str(c.id), "productId": c.product_id, "storeId": "1"} for c in changes]}


@pytest.mark.parametrize(("operation", "division", "amount"), [
    (lambda sb: sb.stocktake(A, 10), "08", None), (lambda sb: sb.loss(A, 2), "14", -2),
    (lambda sb: sb.ship([(A, 1), (B, 1)]), "10", -1), (lambda sb: sb.correct(A, 0), "01", None)])
def test_pos_movements_write_history_and_notify(smaregi_sandbox, receiver, operation, division, amount):
    """Stocktake (08), loss (14), shipment (10) and correction (01) each write history and notify once."""
    smaregi_sandbox.configure(notify_url=receiver.url)
    before = smaregi_sandbox.stock_of(A)
    changes = operation(smaregi_sandbox)
    assert len(receiver.received) == 1
    change = changes[0]
    assert change.division == division and smaregi_sandbox.history[-len(changes)] is change
    assert change.amount == (amount if amount is not None else change.stock_amount - before)
    assert smaregi_sandbox.stock_of(A) == change.stock_amount


def test_sale_of_an_unmanaged_product_moves_no_stock(smaregi_sandbox, receiver):
    """A product outside stock control (stockControlDivision 1) gets no stock row and no notification."""
    smaregi_sandbox.configure(notify_url=receiver.url)
    assert smaregi_sandbox.sell([(UNMANAGED, 1)]) == []
    assert smaregi_sandbox.stock_of(UNMANAGED) is None and receiver.received == []


def test_resend_posts_the_identical_payload(smaregi_sandbox, receiver):
    """再送 posts the same body and headers again (Platform: the same Smaregi-Event-Id)."""
    for mode in ("legacy", "platform"):
        smaregi_sandbox.configure(notify_url=receiver.url, notify_mode=mode)
        smaregi_sandbox.sell([(A, 1)])
        send = smaregi_sandbox.sends[-1]
        smaregi_sandbox.resend(send.id)
        first, second = receiver.received[-2:]
        assert first["body"] == second["body"]
        assert first["headers"].get("Smaregi-Event-Id") == second["headers"].get("Smaregi-Event-Id")
        assert len(send.attempts) == 2


def test_receiver_answering_400_is_recorded_as_failed_then_resent(smaregi_sandbox, receiver):
    """A non-2xx answer marks the send 失敗 with status and body; a later resend marks it 成功."""
    smaregi_sandbox.configure(notify_url=receiver.url)
    receiver.status = 400
    smaregi_sandbox.sell([(A, 1)])
    send = smaregi_sandbox.sends[-1]
    assert (send.status, send.last.status, send.last.response_body) == ("failed", 400, "code_mismatch")
    receiver.status = 200
    assert smaregi_sandbox.resend(send.id).status == "success"


def test_unreachable_receiver_is_recorded_as_failed(smaregi_sandbox):
    """A refused connection is a failed send with no status code."""
    smaregi_sandbox.configure(notify_url="http://127.0.0.1:9/webhooks/smaregi/X", notify_timeout=2)
    smaregi_sandbox.sell([(A, 1)])
    assert smaregi_sandbox.sends[-1].status == "failed" and smaregi_sandbox.sends[-1].last.status is None


def test_legacy_stock_upd_sends_no_notification(smaregi_server, smaregi_sandbox, receiver, http):
    """Changes made through legacy stock_upd are not sent back (doc §2.5)."""
    smaregi_sandbox.configure(notify_url=receiver.url)
    LegacySmaregiClient(f"{smaregi_server.url}/access/", CONTRACT, TOKEN, "1", session=http).set_stock(A, 7)
    assert smaregi_sandbox.stock_of(A) == 7 and smaregi_sandbox.sends == []


def test_platform_write_is_echoed_with_the_history_id(smaregi_server, smaregi_sandbox, receiver, http, bearer):
    """A Platform PATCH sends a pos:stock webhook whose ids[].id is the returned stockHistory.id."""
    smaregi_sandbox.configure(notify_url=receiver.url, notify_mode="platform")
    answer = http.patch(pos(smaregi_server, f"/stock/{A}"), headers=bearer,
                        json={"storeId": "1", "stockAmount": "12", "stockHistory": {"memo": "棚替え"}})
    assert answer.status_code == 200
    body = answer.json()
    assert body["stockAmount"] == "12" and body["stockHistory"]["memo"] == "棚替え"
    smaregi_sandbox.wait_for_sends()
    [got] = receiver.received
    history_id = body["stockHistory"]["id"]
    assert json.loads(got["body"])["ids"] == [{"id": history_id, "productId": A, "storeId": "1"}]


def test_legacy_ref_answers_strings_with_total_count(smaregi_server, http):
    """stock_ref answers string values and a string total_count, paged by limit/page."""
    answer = legacy_call(http, smaregi_server, "stock_ref", {"table_name": "Stock", "conditions": [{"storeId": "1"}],
                                                     "limit": 10, "page": 2})
    body = answer.json()
    assert answer.status_code == 200 and body["total_count"] == "54"
    assert len(body["result"]) == 10 and body["result"][0]["productId"] == "8000011"
    assert all(isinstance(v, str) for v in body["result"][0].values())


def test_legacy_conditions_take_operators_in_keys(smaregi_server, smaregi_sandbox, http):
    """Conditions are AND-ed maps with the operator in the key ("stockAmount >=")."""
    params = {"table_name": "Stock", "fields": ["productId", "stockAmount"],
              "conditions": [{"storeId": "1", "stockAmount >=": "20"}, {"productId <": "8000030"}]}
    rows = legacy_call(http, smaregi_server, "stock_ref", params).json()["result"]
    expected = sorted(pid for (sid, pid), row in smaregi_sandbox.stock.items()
                      if sid == "1" and row.amount >= 20 and int(pid) < 8000030)
    assert [r["productId"] for r in rows] == expected and rows


def test_legacy_stock_history_table(smaregi_server, smaregi_sandbox, http):
    """StockHistory rows carry id, amount, stockAmount, stockDivision and a JST updDateTime."""
    [change] = smaregi_sandbox.loss(A, 1)
    params = {"table_name": "StockHistory", "conditions": [{"id": str(change.id)}]}
    [row] = legacy_call(http, smaregi_server, "stock_ref", params).json()["result"]
    assert (row["amount"], row["stockDivision"], row["fromStoreId"]) == ("-1", "14", None)


@pytest.mark.parametrize(("proc_name", "params", "code"), [
    ("stock_ref", {"table_name": "Stock", "limit": 1001}, 41),
    ("stock_ref", {"table_name": "Customer"}, 31),
    ("nope_ref", {"table_name": "Stock"}, 15),
    ("stock_upd", {"proc_info": {"proc_division": "D", "proc_detail_division": "1"}, "data": []}, 32),
    ("stock_upd", {"proc_info": {"proc_division": "U", "proc_detail_division": "0"}, "data": []}, 33),
    ("stock_upd", {"proc_info": {"proc_division": "U", "proc_detail_division": "1"},
                   "data": [{"table_name": "Stock", "rows": [
                       {"storeId": "1", "productId": "1", "stockAmount": "1", "stockDivision": "15"}]}]}, 41),
])
def test_legacy_errors_have_the_error_code_shape(smaregi_server, http, proc_name, params, code):
    """Legacy refusals are HTTP 400 with error_code, error and error_description."""
    answer = legacy_call(http, smaregi_server, proc_name, params)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == code and set(answer.json()) == {"error_code", "error",
                                                                        "error_description"}


def test_legacy_accepts_hyphen_headers_and_raw_params(smaregi_server, http):
    """X-contract-id/X-access-token and a params body that is not URL-encoded both work."""
    raw = ('proc_name=stock_ref&params={"table_name":"Stock",'
           '"conditions":[{"productId":"8000001","storeId":"1"}]}')
    answer = http.post(f"{smaregi_server.url}/access/", data=raw.encode(),
                       headers={"X-contract-id": CONTRACT, "X-access-token": TOKEN,
                                "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and answer.json()["total_count"] == "1"


def test_legacy_wrong_token_and_contract(smaregi_server, http):
    """A wrong access token is error 13, a wrong or missing contract id error 14."""
    wrong_token = legacy_call(http, smaregi_server, "stock_ref", {"table_name": "Stock"},
                              {"X_contract_id": CONTRACT, "X_access_token": "x"})
    missing = legacy_call(http, smaregi_server, "stock_ref", {"table_name": "Stock"}, {"X_access_token": TOKEN})
    assert (wrong_token.json()["error_code"], missing.json()["error_code"]) == (13, 14)


def test_plain_serve_in_thread_drops_the_legacy_headers(smaregi_sandbox, http):
    """werkzeug's server drops X_contract_id, which is why the sandbox is served by serve_smaregi."""
    running = serve_in_thread(create_app(smaregi_sandbox))
    try:
        answer = legacy_call(http, running, "stock_ref", {"table_name": "Stock"})
    finally:
        running.stop()
    assert answer.json()["error_code"] == 14 and "dropped" in answer.json()["error_description"]


def test_token_endpoint_refuses_a_wrong_client(smaregi_server, http):
    """Wrong Basic credentials get 401 {"error": "invalid_client"}."""
    answer = http.post(f"{smaregi_server.url}/app/{CONTRACT}/token", auth=(CLIENT_ID, "wrong"),
                       data={"grant_type": "client_credentials"})
    assert (answer.status_code, answer.json()) == (401, {"error": "invalid_client"})


def test_token_endpoint_issues_a_bearer_token(smaregi_server, http):
    """The token answer has access_token, token_type Bearer, expires_in 3600 and the scope."""
    answer = http.post(f"{smaregi_server.url}/app/{CONTRACT}/token", auth=(CLIENT_ID, CLIENT_SECRET),
                       data={"grant_type": "client_credentials", "scope": "pos.stock:read"})
    body = answer.json()
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "pos.stock:read")


def test_platform_requires_a_bearer_token_and_scope(smaregi_server, http):
    """No token is 401; a token without the scope is 403; both RFC 7807-like."""
    assert http.get(pos(smaregi_server, "/stock")).json()["status"] == 401
    token = http.post(f"{smaregi_server.url}/app/{CONTRACT}/token", auth=(CLIENT_ID, CLIENT_SECRET),
                      data={"grant_type": "client_credentials", "scope": "pos.products:read"}).json()
    answer = http.get(pos(smaregi_server, "/stock"), headers={"Authorization": f"Bearer {token['access_token']}"})
    assert (answer.status_code, answer.json()["title"]) == (403, "Forbidden")


def test_platform_unknown_product_is_404_notfound(smaregi_server, http, bearer):
    """An unknown product is 404 with title "NotFound" (no space)."""
    answer = http.patch(pos(smaregi_server, "/stock/7777777"), headers=bearer,
                        json={"storeId": "1", "stockAmount": "1"})
    assert answer.status_code == 404
    assert answer.json() == {"type": "about:blank", "title": "NotFound", "status": 404,
                             "detail": "指定されたIDのリソースが見つかりません"}


def test_platform_unknown_store_is_400(smaregi_server, http, bearer):
    """An unknown store is 400 "指定された店舗IDのリソースが見つかりません"."""
    answer = http.patch(pos(smaregi_server, f"/stock/{A}"), headers=bearer,
                        json={"storeId": "99", "stockAmount": "1"})
    assert answer.status_code == 400 and "店舗ID" in answer.json()["detail"]


def test_platform_add_beyond_the_bound_is_400(smaregi_server, smaregi_sandbox, http, bearer):
    """A relative add whose result exceeds 999999999 is refused with the documented detail."""
    smaregi_sandbox.seed_stock(A, 999_999_990)
    answer = http.post(pos(smaregi_server, f"/stock/{A}/add"), headers=bearer,
                       json={"storeId": "1", "stockAmount": "10"})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "更新後の在庫数は[999999999]以下である必要があります"


def test_platform_numbers_are_strings(smaregi_server, http, bearer):
    """Responses carry numbers as strings; a request with a JSON number is refused."""
    [row] = http.get(pos(smaregi_server, "/stock"), headers=bearer, params={"product_id": A, "store_id": "1"}).json()
    assert isinstance(row["stockAmount"], str) and row["updDateTime"].endswith("+09:00")
    answer = http.patch(pos(smaregi_server, f"/stock/{A}"), headers=bearer, json={"storeId": "1", "stockAmount": 5})
    assert answer.status_code == 400


def test_platform_lists_are_bare_arrays_paged(smaregi_server, http, bearer):
    """GET /products pages with limit/page; limit above 1000 is 400."""
    page = http.get(pos(smaregi_server, "/products"), headers=bearer, params={"limit": 20, "page": 3}).json()
    assert isinstance(page, list) and len(page) == 16 and page[0]["productId"] == "8000041"
    assert http.get(pos(smaregi_server, "/products"), headers=bearer, params={"limit": 1001}).status_code == 400


def test_platform_stock_changes_of_one_product_and_store(smaregi_server, smaregi_sandbox, http, bearer):
    """GET /stock/changes/{product}/{store} lists the history rows, filterable by id."""
    [change] = smaregi_sandbox.sell([(A, 1)])
    rows = http.get(pos(smaregi_server, f"/stock/changes/{A}/1"), headers=bearer).json()
    assert [r["stockDivision"] for r in rows] == ["01", "02"]
    [row] = http.get(pos(smaregi_server, f"/stock/changes/{A}/1"), headers=bearer,
                     params={"id": str(change.id)}).json()
    assert (row["amount"], row["stockAmount"]) == ("-1", str(change.stock_amount))


def test_platform_client_reads_what_the_pos_sold(smaregi_server, smaregi_sandbox, http):
    """After a POS sale the Platform client reads the lowered stock."""
    client = PlatformSmaregiClient(smaregi_server.url, smaregi_server.url, CONTRACT, CLIENT_ID, CLIENT_SECRET, "1",
                                   session=http)
    before = client.fetch_stock([A])[A]
    smaregi_sandbox.sell([(A, 2)])
    assert client.fetch_stock([A]) == {A: before - 2}


def test_control_endpoints_sell_and_list_sends(smaregi_server, smaregi_sandbox, receiver, http):
    """POST /sandbox/config, /sandbox/sale, GET /sandbox/sends and resend work over HTTP as JSON."""
    assert http.post(f"{smaregi_server.url}/sandbox/config", json={"notify_url": receiver.url}).status_code == 200
    answer = http.post(f"{smaregi_server.url}/sandbox/sale", json={"lines": [{"product_id": A, "quantity": 2},
                                                                      {"product_id": B, "quantity": 3}]})
    assert answer.status_code == 200 and len(answer.json()["changes"]) == 2
    [send] = http.get(f"{smaregi_server.url}/sandbox/sends").json()
    assert send["status"] == "success" and send["status_code"] == 200
    assert len(send["payload"]["params"]["data"][0]["rows"]) == 2
    again = http.post(f"{smaregi_server.url}/sandbox/sends/{send['id']}/resend").json()
    assert len(again["attempts"]) == 2 and len(receiver.received) == 2


def test_control_endpoints_change_stock_and_fail(smaregi_server, smaregi_sandbox, http):
    """Stocktake, loss, products and fail endpoints act on the sandbox; bad input is 400."""
    base = f"{smaregi_server.url}/sandbox"
    assert http.post(f"{base}/stocktake", json={"product_id": A, "stock": 30}).status_code == 200
    assert http.post(f"{base}/loss", json={"product_id": A, "quantity": 4}).status_code == 200
    assert smaregi_sandbox.stock_of(A) == 26
    added = http.post(f"{base}/products", json={"products": [{"product_id": "9100001", "name": "新商品",
                                                               "stock": 5}]})
    assert added.status_code == 201 and smaregi_sandbox.stock_of("9100001") == 5
    assert http.post(f"{base}/loss", json={"product_id": "404", "quantity": 1}).status_code == 400
    assert http.post(f"{base}/fail", json={"kind": "500", "count": 1}).status_code == 200
    assert legacy_call(http, smaregi_server, "stock_ref", {"table_name": "Stock"}).status_code == 500


def test_control_page_is_html_with_forms(smaregi_server, smaregi_sandbox, http):
    """GET /sandbox/ shows the products and forms; a form post redirects back with 303."""
    page = http.get(f"{smaregi_server.url}/sandbox/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "オーガニックコットンTシャツ" in page.text and 'action="/sandbox/sale"' in page.text
    answer = http.post(f"{smaregi_server.url}/sandbox/sale", allow_redirects=False,
                       data={"product_id": [A, B, ""], "quantity": ["1", "2", "1"], "store_id": "1"})
    assert answer.status_code == 303 and smaregi_sandbox.history[-1].product_id == B
    page = http.get(f"{smaregi_server.url}/sandbox/?error={quote('<b>x</b>')}")
    assert "&lt;b&gt;x&lt;/b&gt;" in page.text


def test_catalogue_has_variants_and_the_awkward_cases():
    """The sample catalogue is deterministic, ≥ 50 products, with variants and the special cases."""
    products = sample_products()
    assert products == sample_products() and len(products) >= 50
    tshirts = [p for p in products if p.group_code == "TS01"]
    assert len(tshirts) == 12 and len({p.product_id for p in tshirts}) == 12
    assert {(p.size, p.color) for p in tshirts} >= {("S", "ホワイト"), ("XL", "ネイビー")}
    assert sum(p.store_only for p in products) == 1
    assert any(p.stock is not None and p.stock < 0 for p in products)
    assert [p.name for p in products if p.stock_control_division == "1"] == ["ギフトラッピング"]


def test_form_params_url_encoded_by_the_client(smaregi_server, smaregi_sandbox, http):
    """The production client's params arrive intact through form encoding (Japanese memo included)."""
    client = LegacySmaregiClient(f"{smaregi_server.url}/access/", CONTRACT, TOKEN, "1", session=http)
    client.set_stock(A, 3, memo="在庫 & 修正+1")
    assert smaregi_sandbox.history[-1].memo == "在庫 & 修正+1"
