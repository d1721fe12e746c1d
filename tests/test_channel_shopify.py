"""The Shopify client against the Shopify sandbox over real HTTP on loopback."""
from __future__ import annotations

import ast
import inspect

import pytest
import requests

from stocklink.platforms import shopify as shopify_module
from stocklink.platforms.base import AuthError, ConnectionCheck, PlatformError, StockWrite, TemporaryError
from stocklink.platforms.shopify import ShopifyClient, production_base_url
from stocklink.sandbox.server import serve_in_thread
from stocklink.sandbox.shopify import ShopifySandbox, create_app


@pytest.fixture
def store():
    """A fresh Shopify sandbox served on loopback."""
    sandbox = ShopifySandbox()
    server = serve_in_thread(create_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


@pytest.fixture
def make_client(store):
    """Build clients for the default location, with sessions closed after the test."""
    sessions = []

    def make(token: str | None = None, timeout: float = 5.0, location=None) -> ShopifyClient:
        session = requests.Session()
        sessions.append(session)
        return ShopifyClient(store.url, {"access_token": token or store.issue_token()},
                             {"location_id": location or store.default_location},
                             session=session, timeout=timeout)

    yield make
    for session in sessions:
        session.close()


def graphql(store, query: str, variables: dict | None = None) -> dict:
    """Post a raw GraphQL document to the sandbox."""
    with requests.Session() as session:
        return session.post(f"{store.url}/admin/api/2026-04/graphql.json",
                            json={"query": query, "variables": variables or {}},
                            headers={"X-Shopify-Access-Token": store.issue_token()}).json()


def test_connection_names_shop_and_location(store, make_client):
    """test_connection names the shop and the configured location."""
    assert make_client().test_connection() == ConnectionCheck(account="stocklink-sandbox", location="本店倉庫")


def test_connection_rejects_unknown_location(store, make_client):
    """A location that does not exist fails test_connection."""
    with pytest.raises(PlatformError):
        make_client(location=999).test_connection()


def test_read_stock_by_numeric_id_and_gid(store, make_client):
    """read_stock returns available at the location; unknown or unstocked items are None."""
    first = store.add_item("A-1", 5)
    second = store.add_item("B-2", 0)
    elsewhere = store.add_item("C-3", 7, store.add_location("倉庫2"))
    idents = [str(first), f"gid://shopify/InventoryItem/{second}", str(elsewhere), "123"]
    assert make_client().read_stock(idents) == {
        str(first): 5, idents[1]: 0, str(elsewhere): None, "123": None}


def test_write_sets_with_compare_and_idempotency_key(store, make_client):
    """A write sends inventorySetQuantities with changeFromQuantity = expected and @idempotent(key)."""
    item = store.add_item("A-1", 5)
    [result] = make_client().write_stock([StockWrite(str(item), 3, expected=5, key="push-1")])
    assert (result.status, result.confirmed) == ("ok", 3)
    assert store.stock(item) == 3
    request = store.requests[-1]
    assert request["path"] == "/admin/api/2026-04/graphql.json"
    body = request["body"]
    assert "inventorySetQuantities" in body["query"] and "@idempotent(key: $key0)" in body["query"]
    assert body["variables"]["key0"] == "push-1"
    assert body["variables"]["input0"]["quantities"] == [{
        "inventoryItemId": f"gid://shopify/InventoryItem/{item}",
        "locationId": f"gid://shopify/Location/{store.default_location}",
        "quantity": 3, "changeFromQuantity": 5}]
    assert body["variables"]["input0"]["name"] == "available"


def test_unknown_expected_sends_explicit_null(store, make_client):
    """Without expected, changeFromQuantity is sent as null (opting out of the check)."""
    item = store.add_item("A-1", 5)
    [result] = make_client().write_stock([StockWrite(str(item), 9, key="k")])
    assert (result.status, store.stock(item)) == ("ok", 9)
    assert store.requests[-1]["body"]["variables"]["input0"]["quantities"][0]["changeFromQuantity"] is None


def test_stale_compare_returns_fresh_quantity(store, make_client):
    """When Shopify sold meanwhile the write is refused as stale and confirmed holds the fresh quantity."""
    item = store.add_item("A-1", 5)
    store.set_stock(item, 4)  # a sale on Shopify
    [result] = make_client().write_stock([StockWrite(str(item), 3, expected=5, key="k")])
    assert (result.status, result.confirmed) == ("stale", 4)
    assert store.stock(item) == 4 and store.adjustments == []


def test_same_idempotency_key_applies_once(store, make_client):
    """Sending the same write with the same key twice applies it once and replays the first answer."""
    item = store.add_item("A-1", 5)
    client = make_client()
    write = StockWrite(str(item), 3, expected=5, key="push-7")
    [first] = client.write_stock([write])
    store.set_stock(item, 2)  # later sale: a re-applied set would be stale or overwrite it
    [second] = client.write_stock([write])
    assert (first.status, second.status, first.ref) == ("ok", "ok", second.ref)
    assert store.stock(item) == 2
    assert len(store.adjustments) == 1


def test_same_key_other_parameters_is_refused(store, make_client):
    """Reusing a key with different values is IDEMPOTENCY_KEY_PARAMETER_MISMATCH, a PlatformError."""
    item = store.add_item("A-1", 5)
    client = make_client()
    client.write_stock([StockWrite(str(item), 3, expected=5, key="k")])
    with pytest.raises(PlatformError) as caught:
        client.write_stock([StockWrite(str(item), 1, expected=3, key="k")])
    assert caught.value.code == "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"


def test_batch_items_succeed_or_fail_alone(store, make_client):
    """An unknown item, a stale item and a good item each get their own outcome: the mutation is
    all or nothing, so the good one is sent again without the two it refused."""
    good = store.add_item("A-1", 5)
    sold = store.add_item("B-2", 5)
    store.set_stock(sold, 1)
    results = make_client().write_stock([StockWrite("999", 1, expected=0, key="a"),
                                         StockWrite(str(sold), 4, expected=5, key="b"),
                                         StockWrite(str(good), 2, expected=5, key="c")])
    assert [r.status for r in results] == ["unknown_item", "stale", "ok"]
    assert results[1].confirmed == 1
    assert (store.stock(good), store.stock(sold)) == (2, 1)
    mutations = [r["body"]["variables"]["input0"]["quantities"] for r in store.requests
                 if "mutation" in r["body"]["query"]]
    assert [len(quantities) for quantities in mutations] == [3, 1]
    assert mutations[1][0]["inventoryItemId"] == f"gid://shopify/InventoryItem/{good}"
    assert len(store.adjustments) == 1


def test_a_batch_is_one_mutation_whose_cost_does_not_grow_with_its_writes(store, make_client):
    """Twenty writes cost what one does (one inventorySetQuantities), and the same batch sent
    again replays under the same key instead of being applied twice."""
    items = [store.add_item(f"S-{n}", 5) for n in range(20)]
    client = make_client()
    store.set_bucket(15, 0.001)  # room for one mutation of 13 points, and no refill to speak of
    batch = [StockWrite(str(item), 3, expected=5, key=f"k{n}") for n, item in enumerate(items[1:])]
    assert [r.status for r in client.write_stock(batch)] == ["ok"] * 19
    with pytest.raises(TemporaryError):  # the bucket is spent: a single write is refused as well
        client.write_stock([StockWrite(str(items[0]), 4, expected=5, key="one")])
    assert [store.stock(item) for item in items] == [5] + [3] * 19
    store.set_bucket(2000, 1e6)  # refilled at once
    store.set_stock(items[1], 1)  # a later sale: a batch applied again would overwrite it
    assert [r.status for r in client.write_stock(batch)] == ["ok"] * 19
    assert store.stock(items[1]) == 1 and len(store.adjustments) == 1


def test_item_not_stocked_at_location_is_unknown(store, make_client):
    """An item not stocked at the configured location is unknown_item."""
    item = store.add_item("A-1", 5, stocked=False)
    [result] = make_client().write_stock([StockWrite(str(item), 1, expected=0, key="k")])
    assert (result.status, result.extra["code"]) == ("unknown_item", "ITEM_NOT_STOCKED_AT_LOCATION")


def test_throttled_is_temporary_with_retry_after(store, make_client):
    """A THROTTLED answer raises TemporaryError with retry_after from the cost block."""
    store.throttle_next(1)
    with pytest.raises(TemporaryError) as caught:
        make_client().read_stock(["1"])
    assert caught.value.code == "THROTTLED" and caught.value.retry_after > 0


def test_cost_bucket_throttles_when_empty(store, make_client):
    """With a tiny bucket a request costing more than what is left is throttled."""
    item = store.add_item("A-1", 5)
    store.set_bucket(5, 0.001)
    client = make_client()
    assert client.read_stock([str(item)]) == {str(item): 5}  # costs 3 points
    with pytest.raises(TemporaryError) as caught:
        client.read_stock([str(item)])
    assert caught.value.retry_after > 100


def test_bad_token_is_an_auth_error(store, make_client):
    """A revoked token answers 401 and raises AuthError without the token in the message."""
    token = store.issue_token()
    store.revoke_token(token)
    with pytest.raises(AuthError) as caught:
        make_client(token).test_connection()
    assert caught.value.status == 401 and token not in str(caught.value)


def test_maintenance_and_5xx_are_temporary(store, make_client):
    """503 maintenance and a forced 500 raise TemporaryError."""
    client = make_client()
    store.fail_next(1, 500)
    with pytest.raises(TemporaryError):
        client.test_connection()
    store.set_maintenance(True)
    with pytest.raises(TemporaryError) as caught:
        client.test_connection()
    assert caught.value.retry_after == 60.0


def test_slow_answer_times_out_as_temporary(store, make_client):
    """A response slower than the client's timeout raises TemporaryError(code='timeout')."""
    store.set_delay(0.6)
    with pytest.raises(TemporaryError) as caught:
        make_client(timeout=0.2).test_connection()
    assert caught.value.code == "timeout"


def test_sandbox_requires_change_from_quantity_and_key(store):
    """The sandbox refuses a set without changeFromQuantity or without @idempotent, applying nothing."""
    item = store.add_item("A-1", 5)
    mutation = """mutation($input: InventorySetQuantitiesInput!) {
      inventorySetQuantities(input: $input) %s { userErrors { code } } }"""
    quantity = {"inventoryItemId": f"gid://shopify/InventoryItem/{item}",
                "locationId": f"gid://shopify/Location/{store.default_location}", "quantity": 1}
    data = {"name": "available", "reason": "correction", "quantities": [quantity]}
    no_change_from = graphql(store, mutation % '@idempotent(key: "a")', {"input": data})
    assert "changeFromQuantity" in no_change_from["errors"][0]["message"]
    quantity["changeFromQuantity"] = 5
    no_key = graphql(store, mutation % "", {"input": data})
    assert "@idempotent" in no_key["errors"][0]["message"]
    assert store.stock(item) == 5


def test_sandbox_rejects_unknown_fields(store):
    """The sandbox validates queries: an unknown field is an error with no data."""
    body = graphql(store, "{ shop { name planName } }")
    assert "data" not in body
    assert body["errors"][0]["message"] == "Field 'planName' doesn't exist on type 'Shop'"


def test_production_base_url():
    """The production base URL is the shop's myshopify domain."""
    assert production_base_url("acme") == "https://acme.myshopify.com"
    assert production_base_url("acme.myshopify.com") == "https://acme.myshopify.com"


def test_production_code_does_not_import_the_sandbox():
    """The client module never imports stocklink.sandbox."""
    tree = ast.parse(inspect.getsource(shopify_module))
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any(name.startswith("stocklink.sandbox") for name in names)


def test_sandbox_control_endpoints(store):
    """The /sandbox/ JSON endpoints add items, sell, throttle and list applied adjustments."""
    with requests.Session() as s:
        item = s.post(f"{store.url}/sandbox/items", json={"sku": "A-1", "available": 5}).json()
        s.post(f"{store.url}/sandbox/items/{item['id']}/stock", json={"available": 2})
        assert s.get(f"{store.url}/sandbox/items/{item['id']}").json()["available"] == 2
        token = s.post(f"{store.url}/sandbox/tokens").json()["access_token"]
        s.post(f"{store.url}/sandbox/throttle", json={"count": 1})
        body = s.post(f"{store.url}/admin/api/2026-04/graphql.json", json={"query": "{ shop { name } }"},
                      headers={"X-Shopify-Access-Token": token}).json()
        assert body["errors"][0]["extensions"]["code"] == "THROTTLED" and "data" not in body
        assert s.get(f"{store.url}/sandbox/adjustments").json() == {"adjustments": []}
        location = s.post(f"{store.url}/sandbox/locations", json={"name": "倉庫2"}).json()["id"]
        assert location in store.locations
