"""Web sales registered in Smaregi as shipments (出荷) or transactions (取引), both API generations,
against the sandbox over real HTTP on loopback: stock effect, the reference, find, cancel, faults."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
from flask import Flask, request

from stocklink.platforms.base import AuthError, PlatformError, TemporaryError
from stocklink.platforms.smaregi import (
    FoundSale,
    PlatformSmaregiClient,
    SaleLine,
    SaleRegistration,
    make_smaregi_client,
)
from stocklink.platforms.smaregi.common import terminal_tran_id
from stocklink.sandbox.smaregi import SmaregiSandbox, serve_smaregi
from tests.e2e_helpers import CLIENT_ID, CLIENT_SECRET, CONTRACT, TOKEN

pytest_plugins = ["tests.fixtures_platforms"]
pytestmark = pytest.mark.usefixtures("smaregi_sample")

WHITE_M, WHITE_L = "8000002", "8000003"  # stock 10 and 17 in 本店 (store 1)
WHEN = datetime(2026, 12, 6, 3, 4, 5, tzinfo=UTC)  # 12:04:05 JST
DIVISION = {"shipment": "10", "transaction": "02"}


def settings(smaregi_server, generation: str, **overrides) -> dict:
    return {"api_generation": generation, "contract_id": CONTRACT, "access_token": TOKEN,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "store_id": "1", "terminal_id": "7",
            "register_sales": "1", "legacy_base_url": f"{smaregi_server.url}/access/",
            "platform_id_base_url": smaregi_server.url, "platform_api_base_url": smaregi_server.url, **overrides}


@pytest.fixture(params=["legacy", "platform"])
def generation(request) -> str:
    return request.param


@pytest.fixture
def smaregi(generation, smaregi_server, http):
    """The client of each generation, built by the factory with terminal 7."""
    return make_smaregi_client(settings(smaregi_server, generation), session=http)


def sale(mode: str, reference: str = "SL-ORD1001-r1", memo: str = "ColorMe 1001") -> SaleRegistration:
    return SaleRegistration(mode, reference, (SaleLine(WHITE_M, 2, 3980), SaleLine(WHITE_L, 1, 3500)), WHEN, memo)


def record(sandbox: SmaregiSandbox, mode: str, smaregi_id: str):
    records = sandbox.shipment_records() if mode == "shipment" else sandbox.transaction_records()
    return next(r for r in records if str(r.id) == smaregi_id)


def test_shipment_takes_stock_out_as_10_and_holds_the_reference(smaregi, smaregi_sandbox):
    """A registered shipment lowers the store's stock with 在庫区分 10 and holds the reference and lines."""
    smaregi_id = smaregi.register_sale(sale("shipment"))
    assert (smaregi_sandbox.stock_of(WHITE_M), smaregi_sandbox.stock_of(WHITE_L)) == (8, 16)
    shipment = record(smaregi_sandbox, "shipment", smaregi_id)
    assert shipment.identification_no == "SL-ORD1001-r1" and shipment.store_id == "1"
    assert [(line.product_id, line.quantity) for line in shipment.lines] == [(WHITE_M, 2), (WHITE_L, 1)]
    assert shipment.shipment_date.strftime("%Y-%m-%d") == "2026-12-06" and shipment.memo == "ColorMe 1001"
    moves = [(c.product_id, c.amount, c.division) for c in smaregi_sandbox.history if c.id in shipment.change_ids]
    assert moves == [(WHITE_M, -2, "10"), (WHITE_L, -1, "10")]


def test_transaction_takes_stock_out_as_02_on_the_configured_terminal(smaregi, smaregi_sandbox):
    """A registered transaction lowers stock with 在庫区分 02, on terminal 7, memo tagged with the reference."""
    smaregi_id = smaregi.register_sale(sale("transaction"))
    assert (smaregi_sandbox.stock_of(WHITE_M), smaregi_sandbox.stock_of(WHITE_L)) == (8, 16)
    transaction = record(smaregi_sandbox, "transaction", smaregi_id)
    assert transaction.memo == "stocklink:SL-ORD1001-r1 ColorMe 1001"
    assert (transaction.store_id, transaction.terminal_id) == ("1", "7")
    assert transaction.terminal_tran_id == terminal_tran_id("SL-ORD1001-r1")
    assert (transaction.subtotal, transaction.total) == (2 * 3980 + 3500,) * 2
    assert transaction.terminal_tran_at == WHEN
    assert [(line.product_id, line.quantity, line.sales_price) for line in transaction.lines] == [
        (WHITE_M, 2, 3980), (WHITE_L, 1, 3500)]
    moves = [(c.product_id, c.amount, c.division) for c in smaregi_sandbox.history if c.id in transaction.change_ids]
    assert moves == [(WHITE_M, -2, "02"), (WHITE_L, -1, "02")]


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_find_sale_finds_by_reference_only(smaregi, mode):
    """find_sale finds the record by its reference, and answers None for another reference."""
    smaregi_id = smaregi.register_sale(sale(mode))
    smaregi.register_sale(sale(mode, reference="SL-ORD1002-r1"))
    assert smaregi.find_sale(sale(mode)) == FoundSale(smaregi_id, cancelled=False)
    assert smaregi.find_sale(sale(mode, reference="SL-ORD9999-r1")) is None


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_cancel_restores_stock_once_and_find_reports_it(smaregi, smaregi_sandbox, mode):
    """Cancelling gives the stock back (same division, plus); twice is harmless; find says cancelled."""
    smaregi_id = smaregi.register_sale(sale(mode))
    smaregi.cancel_sale(mode, smaregi_id)
    smaregi.cancel_sale(mode, smaregi_id)
    assert (smaregi_sandbox.stock_of(WHITE_M), smaregi_sandbox.stock_of(WHITE_L)) == (10, 17)
    assert [(c.amount, c.division) for c in smaregi_sandbox.history[-2:]] == [(2, DIVISION[mode]), (1, DIVISION[mode])]
    assert smaregi.find_sale(sale(mode)) == FoundSale(smaregi_id, cancelled=True)
    assert record(smaregi_sandbox, mode, smaregi_id).cancelled


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_find_prefers_the_live_record_to_a_cancelled_one(smaregi, mode):
    """Registered, cancelled and registered again under one reference: find_sale names the live one."""
    first = smaregi.register_sale(sale(mode))
    smaregi.cancel_sale(mode, first)
    second = smaregi.register_sale(sale(mode))
    assert smaregi.find_sale(sale(mode)) == FoundSale(second, cancelled=False)


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_dropped_answer_is_an_unknown_outcome_settled_by_find(smaregi, smaregi_sandbox, mode):
    """Registered but the connection dropped unanswered: TemporaryError(outcome_unknown), find_sale finds it."""
    smaregi_sandbox.fail_next_registration("drop")
    with pytest.raises(TemporaryError) as excinfo:
        smaregi.register_sale(sale(mode))
    assert excinfo.value.outcome_unknown and excinfo.value.code == "connection"
    assert smaregi_sandbox.stock_of(WHITE_M) == 8
    found = smaregi.find_sale(sale(mode))
    assert found is not None and not found.cancelled
    assert record(smaregi_sandbox, mode, found.smaregi_id)


def test_late_answer_is_a_timeout_settled_by_find(generation, smaregi_server, smaregi_sandbox, http):
    """Registered but answered after the client gave up: TemporaryError(timeout), find_sale finds it."""
    client = make_smaregi_client(settings(smaregi_server, generation), session=http, timeout=0.5)
    client.fetch_stock([WHITE_M])  # the Platform token is obtained before the slow call
    smaregi_sandbox.fail_next_registration("timeout", seconds=1.5)
    with pytest.raises(TemporaryError) as excinfo:
        client.register_sale(sale("transaction"))
    assert excinfo.value.outcome_unknown and excinfo.value.code == "timeout"
    assert client.find_sale(sale("transaction")) is not None


@pytest.mark.parametrize("kind, status", [("500", 500), ("maintenance", 503)])
def test_refused_registration_applies_nothing(smaregi, smaregi_sandbox, kind, status):
    """A 5xx before anything is applied is a TemporaryError; no stock moves and nothing is found."""
    smaregi_sandbox.fail_next_registration(kind, count=2)
    for mode in ("shipment", "transaction"):
        with pytest.raises(TemporaryError) as excinfo:
            smaregi.register_sale(sale(mode))
        assert excinfo.value.status == status
        assert smaregi.find_sale(sale(mode)) is None
    assert smaregi_sandbox.stock_of(WHITE_M) == 10
    assert smaregi.find_sale(sale("shipment")) is None  # the fault was spent on the two registrations
    assert smaregi.register_sale(sale("shipment"))


def test_wrong_credentials_are_an_auth_error(generation, smaregi_server, smaregi_sandbox, http):
    """A refused access token or client secret makes register_sale raise AuthError; stock is untouched."""
    client = make_smaregi_client(settings(smaregi_server, generation, access_token="wrong", client_secret="wrong"),
                                 session=http)
    with pytest.raises(AuthError):
        client.register_sale(sale("shipment"))
    assert smaregi_sandbox.stock_of(WHITE_M) == 10


def test_platform_client_without_sale_scopes_is_refused(smaregi_server, smaregi_sandbox, http):
    """A Platform client built without register_sales has no write scope for sales: AuthError (403)."""
    client = make_smaregi_client(settings(smaregi_server, "platform", register_sales=""), session=http)
    assert isinstance(client, PlatformSmaregiClient)
    with pytest.raises(AuthError) as excinfo:
        client.register_sale(sale("transaction"))
    assert excinfo.value.status == 403
    assert smaregi_sandbox.transaction_records() == []


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_cancel_of_an_unknown_record_is_an_error(smaregi, mode):
    """Cancelling an id Smaregi does not have raises, it is not taken as already cancelled."""
    with pytest.raises(PlatformError) as excinfo:
        smaregi.cancel_sale(mode, "424242")
    assert not isinstance(excinfo.value, TemporaryError | AuthError)


def test_legacy_request_shapes(smaregi_server, smaregi_sandbox, http):
    """Legacy: shipment_upd Shipment + ShipmentDetail, transaction_upd head + details, cancels as modelled."""
    client = make_smaregi_client(settings(smaregi_server, "legacy"), session=http)
    shipment_id = client.register_sale(sale("shipment"))
    transaction_id = client.register_sale(sale("transaction"))
    client.cancel_sale("shipment", shipment_id)
    client.cancel_sale("transaction", transaction_id)
    log = smaregi_sandbox.registration_log
    assert [call for call, _ in log] == ["shipment_upd", "transaction_upd", "shipment_upd", "transaction_upd"]
    shipment = {d["table_name"]: d["rows"] for d in log[0][1]["data"]}
    assert log[0][1]["proc_info"] == {"proc_division": "U"}
    assert shipment["Shipment"] == [{"shipmentStoreId": "1", "identificationNo": "SL-ORD1001-r1",
                                     "shipmentDate": "2026-12-06", "memo": "ColorMe 1001", "status": "1"}]
    assert shipment["ShipmentDetail"] == [{"productId": WHITE_M, "quantity": "2"},
                                          {"productId": WHITE_L, "quantity": "1"}]
    transaction = {d["table_name"]: d["rows"] for d in log[1][1]["data"]}
    assert transaction["TransactionHead"] == [{
        "transactionHeadDivision": "1", "storeId": "1", "terminalId": "7",
        "terminalTranId": terminal_tran_id("SL-ORD1001-r1"), "terminalTranDateTime": "2026-12-06 12:04:05",
        "subtotal": "11460", "total": "11460", "memo": "stocklink:SL-ORD1001-r1 ColorMe 1001"}]
    assert transaction["TransactionDetail"][0] == {"transactionDetailId": "1", "transactionDetailDivision": "1",
                                                   "productId": WHITE_M, "price": "3980", "salesPrice": "3980",
                                                   "quantity": "2"}
    assert log[2][1] == {"proc_info": {"proc_division": "D"},
                         "data": [{"table_name": "Shipment", "rows": [{"shipmentId": shipment_id}]}]}
    assert log[3][1]["data"] == [{"table_name": "TransactionHead",
                                  "rows": [{"transactionHeadId": transaction_id, "cancelDivision": "1"}]}]


def test_platform_request_shapes(smaregi_server, smaregi_sandbox, http):
    """Platform: POST /shipments and /transactions with string values, then POST …/{id}/cancel."""
    client = make_smaregi_client(settings(smaregi_server, "platform"), session=http)
    shipment_id = client.register_sale(sale("shipment"))
    transaction_id = client.register_sale(sale("transaction"))
    client.cancel_sale("shipment", shipment_id)
    client.cancel_sale("transaction", transaction_id)
    log = smaregi_sandbox.registration_log
    base = f"/{CONTRACT}/pos"
    assert [call for call, _ in log] == [f"POST {base}/shipments", f"POST {base}/transactions",
                                         f"POST {base}/shipments/{shipment_id}/cancel",
                                         f"POST {base}/transactions/{transaction_id}/cancel"]
    assert log[0][1] == {"shipmentStoreId": "1", "identificationNo": "SL-ORD1001-r1", "shipmentDate": "2026-12-06",
                         "memo": "ColorMe 1001", "status": "1",
                         "details": [{"productId": WHITE_M, "quantity": "2"}, {"productId": WHITE_L, "quantity": "1"}]}
    body = log[1][1]
    assert {k: v for k, v in body.items() if k != "details"} == {
        "transactionHeadDivision": "1", "storeId": "1", "terminalId": "7",
        "terminalTranId": terminal_tran_id("SL-ORD1001-r1"), "terminalTranDateTime": "2026-12-06T12:04:05+09:00",
        "subtotal": "11460", "total": "11460", "memo": "stocklink:SL-ORD1001-r1 ColorMe 1001"}
    assert [d["transactionDetailId"] for d in body["details"]] == ["1", "2"]
    assert all(isinstance(v, str) for d in body["details"] for v in d.values())


@pytest.fixture
def notifications():
    """A receiver standing in for stocklink's webhook endpoint, recording the bodies it is sent."""
    received: list[dict] = []
    lock = threading.Lock()
    app = Flask("receiver")

    @app.post("/webhooks/smaregi/CUST01")
    def webhook():
        with lock:
            received.append({"form": request.form.to_dict(), "json": request.get_json(silent=True)})
        return {"result": "ok"}

    running = serve_smaregi(app)
    yield f"{running.url}/webhooks/smaregi/CUST01", received
    running.stop()


@pytest.mark.parametrize("mode", ["shipment", "transaction"])
def test_registration_is_notified_with_its_division(smaregi, smaregi_sandbox, generation, notifications, mode):
    """Our own registration comes back as a stock notification whose movement says 10 or 02 (echo)."""
    url, received = notifications
    smaregi_sandbox.configure(notify_url=url, notify_mode=generation)
    smaregi_id = smaregi.register_sale(sale(mode))
    smaregi_sandbox.wait_for_sends()
    assert len(received) == 1
    change_ids = record(smaregi_sandbox, mode, smaregi_id).change_ids
    if generation == "legacy":
        rows = json.loads(received[0]["form"]["params"])["data"][0]["rows"]
        assert [(r["productId"], r["amount"], r["stockDivision"]) for r in rows] == [
            (WHITE_M, "-2", DIVISION[mode]), (WHITE_L, "-1", DIVISION[mode])]
    else:
        ids = [int(i["id"]) for i in received[0]["json"]["ids"]]
        assert ids == change_ids
        changes = [smaregi.get_stock_change(WHITE_M, str(ids[0])), smaregi.get_stock_change(WHITE_L, str(ids[1]))]
        assert [c.stock_division for c in changes] == [DIVISION[mode]] * 2


@pytest.mark.parametrize("bad", [
    {"mode": "order"}, {"reference": ""}, {"reference": "x" * 33}, {"lines": ()},
    {"lines": (SaleLine(WHITE_M, 0, 100),)}, {"lines": (SaleLine(WHITE_M, 1, None),)},
    {"lines": (SaleLine("TS01", 1, 100),)}, {"occurred_at": datetime(2026, 12, 6)},
])
def test_invalid_registration_is_refused_before_sending(bad):
    """A registration Smaregi could not take (mode, reference, lines, naive time) raises ValueError."""
    values = {"mode": "transaction", "reference": "SL-1", "lines": (SaleLine(WHITE_M, 1, 100),), "occurred_at": WHEN}
    with pytest.raises(ValueError):
        SaleRegistration(**{**values, **bad})


def test_shipment_lines_need_no_price():
    """A shipment line may leave the price unknown."""
    assert SaleRegistration("shipment", "SL-1", (SaleLine(WHITE_M, 1, None),), WHEN).lines[0].unit_price is None


def test_control_surface_arms_a_registration_fault(smaregi_server, smaregi_sandbox, http):
    """POST /sandbox/fail-registration arms the fault; the control page offers it and lists registrations."""
    answer = http.post(f"{smaregi_server.url}/sandbox/fail-registration", json={"kind": "drop", "count": 1})
    assert answer.status_code == 200
    refused = http.post(f"{smaregi_server.url}/sandbox/fail-registration", json={"kind": "nonsense"})
    assert refused.status_code == 400
    client = make_smaregi_client(settings(smaregi_server, "legacy"), session=http)
    with pytest.raises(TemporaryError):
        client.register_sale(sale("shipment"))
    form = http.post(f"{smaregi_server.url}/sandbox/fail-registration", data={"kind": "500", "count": "1"},
                     allow_redirects=False)
    assert form.status_code == 303 and "message" in parse_qs(form.headers["Location"].split("?", 1)[1])
    page = http.get(f"{smaregi_server.url}/sandbox/").text
    assert "fail-registration" in page and "SL-ORD1001-r1" in page
