"""NextEngine order reading (受注伝票, platform-apis-channels.md §2.7): the sandbox's order book
and NextEngineClient.read_orders over real HTTP on loopback."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests

from stocklink.platforms.base import AuthError, TemporaryError
from stocklink.platforms.interfaces import OrderReader
from stocklink.platforms.nextengine import PLATFORM, NextEngineClient
from stocklink.sandbox.nextengine import NextEngineSandbox, create_app
from stocklink.sandbox.orders import OrderRefused
from stocklink.sandbox.server import serve_in_thread

JST = timezone(timedelta(hours=9))
BASE = "/api_v1_receiveorder_base/search"
ROWS = "/api_v1_receiveorder_row/search"


@pytest.fixture
def ne():
    """A NextEngine sandbox (tokens rotating on every call) on loopback with A-001 (10) and B-007 (4)."""
    sandbox = NextEngineSandbox()
    server = serve_in_thread(create_app(sandbox))
    sandbox.url = server.url
    sandbox.add_goods("A-001", 10, name="マグカップ")
    sandbox.add_goods("B-007", 4, name="Tシャツ 白 S")
    yield sandbox
    server.stop()


@pytest.fixture
def client(ne):
    """A NextEngine client logged in to ``ne``."""
    with requests.Session() as session:
        yield NextEngineClient(ne.url, ne.login(), session=session, timeout=5.0)


def _moment(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=JST).astimezone(UTC)


def _form(ne: NextEngineSandbox, path: str) -> list[dict]:
    return [r["body"] for r in ne.requests if r["path"] == path]


def _free(ne: NextEngineSandbox, code: str) -> int:
    return int(ne.stock_row(code)["stock_free_quantity"])


def test_the_client_is_an_order_reader_with_hamees_statuses_by_default():
    """NextEngineClient implements OrderReader; the default status conditions are 1, 2, 20 and 50."""
    assert isinstance(NextEngineClient("http://x", {}), OrderReader)
    assert PLATFORM.order_statuses_default == ("1", "2", "20", "50")


def test_an_order_allocates_stock_shipping_takes_it_and_cancel_gives_it_back(ne):
    """Placed: free stock drops (引当). 出荷確定 (50): 在庫数 drops. Cancelled: it comes back."""
    first = ne.place_order([("A-001", 3)])
    assert (ne.stock("A-001"), _free(ne, "A-001")) == (10, 7)
    ne.cancel_order(first)
    assert (ne.stock("A-001"), _free(ne, "A-001")) == (10, 10)
    second = ne.place_order([("A-001", 2)])
    ne.set_order_status(second, "50")
    assert (ne.stock("A-001"), _free(ne, "A-001")) == (8, 8)
    ne.cancel_order(second)
    assert (ne.stock("A-001"), _free(ne, "A-001")) == (10, 10)


@pytest.mark.parametrize("lines", [[("ZZZ", 1)], [("A-001", 0)], []])
def test_an_order_nextengine_cannot_take_is_refused_and_changes_nothing(ne, lines):
    """Unknown goods, quantity 0, no line: refused, nothing allocated."""
    with pytest.raises(OrderRefused):
        ne.place_order(lines)
    assert ne.orders == {} and _free(ne, "A-001") == 10


def test_read_orders_sees_an_order_placed_edited_and_cancelled(ne, client):
    """Lines are 商品コード and row no; an edit's removed row and a cancel read as quantity 0."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    order_id = ne.place_order([("A-001", 2), ("B-007", 1)], status="2")
    [order] = list(client.read_orders(since))
    assert (order.order_id, order.status, order.cancelled) == (order_id, "2", False)
    assert [(line.line_id, line.identifier, line.quantity, line.code) for line in order.lines] == [
        ("1", "A-001", 2, "A-001"), ("2", "B-007", 1, "B-007")]
    assert order.lines[0].title == "マグカップ" and order.lines[0].unit_price == 1000

    ne.advance(5)
    ne.edit_order(order_id, [("A-001", 5)])
    assert (_free(ne, "A-001"), _free(ne, "B-007")) == (5, 4)
    [edited] = list(client.read_orders(since))
    assert [(line.line_id, line.quantity) for line in edited.lines] == [("1", 5), ("2", 0)]
    assert edited.updated_at > order.updated_at

    ne.advance(5)
    ne.cancel_order(order_id)
    [cancelled] = list(client.read_orders(since))
    assert cancelled.cancelled and [line.quantity for line in cancelled.lines] == [0, 0]
    assert cancelled.updated_at > edited.updated_at and cancelled.ordered_at == order.ordered_at
    assert _free(ne, "A-001") == 10


def test_status_is_the_status_id(ne, client):
    """set_order_status moves the order and its last-modified date; read_orders gives the id."""
    since = datetime.now(UTC) - timedelta(minutes=1)
    order_id = ne.place_order([("A-001", 1)])
    seen = [next(iter(client.read_orders(since))).status]
    for status in ("20", "50"):
        ne.advance(1)
        ne.set_order_status(order_id, status)
        seen.append(next(iter(client.read_orders(since))).status)
    assert seen == ["1", "20", "50"]


def test_since_is_inclusive_and_orders_come_oldest_change_first(ne, client):
    """An order changed before since is not read; one changed exactly at since is; order by change."""
    older = ne.place_order([("A-001", 1)])
    bumped = ne.place_order([("A-001", 1)])
    ne.advance(60)
    exact = ne.place_order([("A-001", 1)])
    since = _moment(ne.orders[exact]["modified"])
    ne.advance(60)
    later = ne.place_order([("A-001", 1)])
    ne.advance(60)
    ne.set_order_status(bumped, "2")  # placed first, changed last: read last
    assert [o.order_id for o in client.read_orders(since)] == [exact, later, bumped]
    assert older not in {o.order_id for o in client.read_orders(since - timedelta(seconds=59))}
    form = _form(ne, BASE)[-2]
    assert form["receive_order_last_modified_date-gte"] == since.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")
    assert form["fields"].startswith("receive_order_id,")


def test_many_orders_are_read_in_pages(ne, client):
    """With a page of 4, 10 orders are read by offset in 3 header pages and their rows by id-in."""
    ne.add_goods("C-100", 100)
    placed = [ne.place_order([("C-100", 1), ("A-001", 1)]) for _ in range(10)]
    client.order_page = 4
    orders = list(client.read_orders(datetime.now(UTC) - timedelta(days=1)))
    assert [o.order_id for o in orders] == placed and all(len(o.lines) == 2 for o in orders)
    assert [(f["offset"], f["limit"]) for f in _form(ne, BASE)] == [("0", "4"), ("4", "4"), ("8", "4")]
    row_forms = _form(ne, ROWS)
    assert {i for f in row_forms for i in f["receive_order_row_receive_order_id-in"].split(",")} == set(placed)
    assert all(int(f["limit"]) == 4 for f in row_forms)


def test_an_expired_access_token_is_renewed_and_both_expired_is_an_auth_error(ne):
    """Access token expired: the read succeeds and the rotated pair is handed over. Both: AuthError."""
    saved = []
    with requests.Session() as session:
        reader = NextEngineClient(ne.url, ne.login(), session=session, timeout=5.0, on_credentials=saved.append)
        ne.place_order([("A-001", 1)])
        ne.expire_access_token()
        assert len(list(reader.read_orders(datetime.now(UTC) - timedelta(minutes=1)))) == 1
        assert saved and saved[-1]["access_token"] == ne.current_tokens()["access_token"]
        ne.expire_tokens()
        with pytest.raises(AuthError):
            list(reader.read_orders(datetime.now(UTC)))


def test_revoked_tokens_are_an_auth_error(ne, client):
    """A revoked token (002004) raises AuthError."""
    ne.revoke_tokens()
    with pytest.raises(AuthError):
        list(client.read_orders(datetime.now(UTC)))


@pytest.mark.parametrize("code", ["003002", "002007"])
def test_overload_and_maintenance_are_temporary(ne, client, code):
    """003002 (overloaded) and 002007 (maintenance), answered HTTP 200, raise TemporaryError."""
    ne.error_next(1, code)
    with pytest.raises(TemporaryError):
        list(client.read_orders(datetime.now(UTC)))


def test_sandbox_order_endpoints(ne):
    """The JSON controls place, edit and cancel an order; a refused one answers 422 and changes nothing."""
    base = f"{ne.url}/sandbox/orders"
    placed = requests.post(base, json={"lines": [["A-001", 2]]}, timeout=5)
    assert placed.status_code == 201 and _free(ne, "A-001") == 8
    order_id = placed.json()["order_id"]
    assert requests.post(f"{base}/{order_id}", json={"lines": [["A-001", 1]], "status": "20"},
                         timeout=5).status_code == 200
    assert _free(ne, "A-001") == 9
    assert requests.post(f"{base}/{order_id}/cancel", timeout=5).status_code == 200
    assert requests.post(base, json={"lines": [["ZZZ", 1]]}, timeout=5).status_code == 422
    [summary] = requests.get(base, timeout=5).json()["orders"]
    assert summary["cancelled"] and summary["status"] == "20" and _free(ne, "A-001") == 10
