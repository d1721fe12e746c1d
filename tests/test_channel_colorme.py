"""The ColorMe client against the ColorMe sandbox over real HTTP on loopback."""
from __future__ import annotations

import ast
import inspect

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from stocklink.platforms import colorme as colorme_module
from stocklink.platforms.base import AuthError, ConnectionCheck, PlatformError, StockWrite, TemporaryError
from stocklink.platforms.colorme import ColorMeClient, make_identifier, parse_identifier
from stocklink.sandbox.colorme import ColorMeSandbox, create_app
from stocklink.sandbox.server import serve_in_thread


@pytest.fixture
def shop():
    """A fresh ColorMe sandbox served on loopback."""
    sandbox = ColorMeSandbox()
    server = serve_in_thread(create_app(sandbox))
    sandbox.url = server.url
    yield sandbox
    server.stop()


@pytest.fixture
def make_client(shop):
    """Build clients with their own sessions, closed after the test."""
    sessions = []

    def make(token: str | None = None, timeout: float = 5.0) -> ColorMeClient:
        session = requests.Session()
        sessions.append(session)
        return ColorMeClient(shop.url, {"access_token": token or shop.issue_token()},
                             session=session, timeout=timeout)

    yield make
    for session in sessions:
        session.close()


def puts(shop: ColorMeSandbox) -> list[dict]:
    return [r for r in shop.requests if r["method"] == "PUT"]


def test_connection_reports_the_shop(shop, make_client):
    """test_connection answers what it found (the shop's product count) when the token works."""
    shop.add_product("Tシャツ", stocks=3)
    shop.add_product("マグカップ", stocks=1)
    assert make_client().test_connection() == ConnectionCheck(products=2)


def test_read_stock_products_and_variants(shop, make_client):
    """read_stock returns product and per-option stock; unknown or option-managed products are None."""
    plain = shop.add_product("靴下", stocks=12)
    shirt = shop.add_product("Tシャツ", variants=[
        {"option1_value": "赤", "option2_value": "S", "stocks": 4},
        {"option1_value": "赤", "option2_value": "M", "stocks": 0}])
    idents = [str(plain), make_identifier(shirt, "赤", "S"), make_identifier(shirt, "赤", "M"),
              str(shirt), make_identifier(shirt, "青", "S"), "999999"]
    assert make_client().read_stock(idents) == {
        str(plain): 12, f"{shirt}:赤:S": 4, f"{shirt}:赤:M": 0,
        str(shirt): None, f"{shirt}:青:S": None, "999999": None}


def test_read_stock_pages_through_more_than_fifty_rows(shop, make_client):
    """read_stock follows /v1/stocks paging (limit is clamped to 50)."""
    product = shop.add_product("多色", variants=[
        {"option1_value": f"色{i}", "stocks": i} for i in range(60)])
    stocks = make_client().read_stock([make_identifier(product, f"色{i}") for i in range(60)])
    assert stocks == {make_identifier(product, f"色{i}"): i for i in range(60)}
    assert sum(1 for r in shop.requests if r["path"] == "/v1/stocks.json") == 2


def test_relative_write_keeps_the_channels_own_sale(shop, make_client):
    """With expected known the client sends an increment, so a sale ColorMe took meanwhile stays deducted."""
    product = shop.add_product("靴下", stocks=10)
    shop.set_stock(product, 8)  # two sold on ColorMe since stocklink last looked
    [result] = make_client().write_stock([StockWrite(str(product), 7, expected=10, key="k1")])
    assert result.status == "ok" and result.confirmed == 5
    assert shop.stock(product) == 5
    assert puts(shop)[-1]["path"] == f"/v1/products/{product}.json"
    assert puts(shop)[-1]["body"] == {"product": {"stocks": {"increment": -3}}}


def test_absolute_write_without_expected(shop, make_client):
    """Without expected the client writes the absolute number."""
    product = shop.add_product("靴下", stocks=10)
    [result] = make_client().write_stock([StockWrite(str(product), 4)])
    assert (result.status, result.confirmed, shop.stock(product)) == ("ok", 4, 4)
    assert puts(shop)[-1]["body"] == {"product": {"stocks": 4}}


def test_variant_write_addresses_option_values(shop, make_client):
    """A variant is written through product.variants[] by option values."""
    shirt = shop.add_product("Tシャツ", variants=[
        {"option1_value": "赤", "option2_value": "S", "stocks": 4},
        {"option1_value": "赤", "option2_value": "M", "stocks": 2}])
    [result] = make_client().write_stock([StockWrite(make_identifier(shirt, "赤", "M"), 6, expected=2)])
    assert (result.status, result.confirmed) == ("ok", 6)
    assert shop.stock(shirt, "赤", "M") == 6 and shop.stock(shirt, "赤", "S") == 4
    assert puts(shop)[-1]["body"] == {"product": {"variants": [
        {"option1_value": "赤", "option2_value": "M", "stocks": {"increment": 4}}]}}


def test_unchanged_write_sends_nothing(shop, make_client):
    """quantity == expected needs no request and is confirmed as is."""
    product = shop.add_product("靴下", stocks=3)
    [result] = make_client().write_stock([StockWrite(str(product), 3, expected=3)])
    assert (result.status, result.confirmed) == ("ok", 3)
    assert puts(shop) == []


def test_unknown_product_is_an_outcome(shop, make_client):
    """ColorMe's 404100 becomes status unknown_item, not an exception."""
    [result] = make_client().write_stock([StockWrite("123456", 5, expected=1)])
    assert result.status == "unknown_item"


def test_unknown_option_and_product_level_write_on_variants(shop, make_client):
    """Unknown option values and product-level writes to option-managed products are unknown_item."""
    shirt = shop.add_product("Tシャツ", variants=[{"option1_value": "赤", "option2_value": "S", "stocks": 4}])
    results = make_client().write_stock([StockWrite(make_identifier(shirt, "青", "S"), 5),
                                         StockWrite(str(shirt), 5)])
    assert [r.status for r in results] == ["unknown_item", "unknown_item"]
    assert shop.stock(shirt, "赤", "S") == 4


def test_revoked_token_is_an_auth_error(shop, make_client):
    """A revoked token raises AuthError (level 9) and the message does not contain it."""
    token = shop.issue_token()
    shop.revoke_token(token)
    with pytest.raises(AuthError) as caught:
        make_client(token).read_stock(["1"])
    assert token not in str(caught.value) and caught.value.status == 401


def test_maintenance_is_temporary(shop, make_client):
    """Maintenance (503) raises TemporaryError."""
    shop.set_maintenance(True)
    with pytest.raises(TemporaryError):
        make_client().test_connection()


def test_server_errors_are_temporary_and_pass(shop, make_client):
    """A forced 502 raises TemporaryError; the next request succeeds."""
    product = shop.add_product("靴下", stocks=1)
    client = make_client()
    shop.fail_next(1, 502)
    with pytest.raises(TemporaryError) as caught:
        client.read_stock([str(product)])
    assert caught.value.status == 502
    assert client.read_stock([str(product)]) == {str(product): 1}


def test_rate_limit_is_temporary_with_retry_after(shop, make_client):
    """429 raises TemporaryError carrying Retry-After."""
    shop.throttle_next(1)
    with pytest.raises(TemporaryError) as caught:
        make_client().test_connection()
    assert caught.value.retry_after == 2.0


def test_slow_answer_times_out_as_temporary(shop, make_client):
    """A response slower than the client's timeout raises TemporaryError(code='timeout')."""
    shop.set_delay(0.6)
    with pytest.raises(TemporaryError) as caught:
        make_client(timeout=0.2).test_connection()
    assert caught.value.code == "timeout"


def test_sandbox_rejects_malformed_stocks(shop):
    """The sandbox answers 422 in ColorMe's envelope to a stocks value that is neither int nor increment."""
    product = shop.add_product("靴下", stocks=1)
    with requests.Session() as session:
        response = session.put(f"{shop.url}/v1/products/{product}", json={"product": {"stocks": "5"}},
                               headers={"Authorization": f"Bearer {shop.issue_token()}"})
    assert response.status_code == 422 and response.json()["errors"][0]["status"] == 422
    assert shop.stock(product) == 1


def test_sandbox_answers_404100_without_suffix(shop):
    """The sandbox accepts suffix-less paths and answers unknown products with 404100."""
    with requests.Session() as session:
        response = session.get(f"{shop.url}/v1/products/42",
                               headers={"Authorization": f"Bearer {shop.issue_token()}"})
    assert response.status_code == 404
    assert response.json() == {"errors": [{"code": 404100, "message": "レコードが見つかりませんでした。",
                                           "status": 404}]}


def test_other_http_errors_are_platform_errors(shop, make_client):
    """An unexpected 4xx becomes a PlatformError, not a crash."""
    shop.fail_next(1, 418)
    with pytest.raises(PlatformError):
        make_client().test_connection()


@given(st.integers(min_value=1, max_value=10**9),
       st.one_of(st.none(), st.text(min_size=0, max_size=8)),
       st.one_of(st.none(), st.text(min_size=0, max_size=8)))
def test_identifier_round_trip(product_id, option1, option2):
    """make_identifier / parse_identifier round-trip any option values, ':' and '%' included."""
    if option1 is None and option2 is not None:
        option1 = ""
    assert parse_identifier(make_identifier(product_id, option1, option2)) == (product_id, option1, option2)


def test_production_code_does_not_import_the_sandbox():
    """The client module never imports stocklink.sandbox."""
    tree = ast.parse(inspect.getsource(colorme_module))
    names = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any(name.startswith("stocklink.sandbox") for name in names)
    assert colorme_module.DEFAULT_BASE_URL == "https://api.shop-pro.jp"


def test_sandbox_control_endpoints(shop):
    """The /sandbox/ JSON endpoints add products, sell, issue tokens and switch failures."""
    with requests.Session() as s:
        product = s.post(f"{shop.url}/sandbox/products", json={"name": "帽子", "stocks": 5}).json()["product"]
        s.post(f"{shop.url}/sandbox/products/{product['id']}/stock", json={"stocks": 3})
        assert s.get(f"{shop.url}/sandbox/products/{product['id']}").json()["product"]["stocks"] == 3
        token = s.post(f"{shop.url}/sandbox/tokens").json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        s.post(f"{shop.url}/sandbox/maintenance", json={"on": True})
        assert s.get(f"{shop.url}/v1/products.json", headers=auth).status_code == 503
        s.post(f"{shop.url}/sandbox/maintenance", json={"on": False})
        s.post(f"{shop.url}/sandbox/fail-next", json={"count": 1, "status": 502})
        assert s.get(f"{shop.url}/v1/products.json", headers=auth).status_code == 502
        s.post(f"{shop.url}/sandbox/tokens/revoke", json={"access_token": token})
        assert s.get(f"{shop.url}/v1/products.json", headers=auth).status_code == 401
        assert s.get(f"{shop.url}/sandbox/requests").json()["requests"][-1]["path"] == "/v1/products.json"
