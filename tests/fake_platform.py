"""An eighth channel kind that exists only in the tests: its client module and its sandbox.

What adding a channel takes: this client with its ``PLATFORM`` declaration, this sandbox,
and one ``register(PLATFORM)`` line (tests/test_platform_registry.py makes it).
"""
from __future__ import annotations

from flask import Flask, jsonify, request
from flask_babel import lazy_gettext as _l

from stocklink.platforms.base import AuthError, ChannelClient, PlatformError, StockWrite, WriteResult, send
from stocklink.platforms.declaration import Field, Platform


class FakeMartClient(ChannelClient):
    """Absolute writes, ``X-Api-Key`` auth, stock under the shop code given in the settings."""

    kind = "fakemart"
    max_batch = 10

    def _call(self, method: str, path: str, **kwargs):
        response = send(self.session, method, f"{self.base_url}/shops/{self.settings['shop_code']}{path}",
                        timeout=self.timeout, headers={"X-Api-Key": self.credentials.get("api_key", "")}, **kwargs)
        if response.status_code == 401:
            raise AuthError("FakeMart refused the API key", status=401)
        if response.status_code != 200:
            raise PlatformError(f"FakeMart {path} failed ({response.status_code})", status=response.status_code)
        return response.json()

    def read_stock(self, identifiers: list[str]) -> dict[str, int | None]:
        stock = self._call("GET", "/stock")
        return {i: stock.get(i) for i in identifiers}

    def write_stock(self, writes: list[StockWrite]) -> list[WriteResult]:
        stock = self._call("PUT", "/stock", json={w.identifier: w.quantity for w in writes})
        return [WriteResult(w.identifier, "ok", confirmed=stock[w.identifier]) for w in writes]


def _shop_code(value: str) -> str:
    if not value.isascii() or not value.isalnum():
        raise ValueError("must be letters and digits")
    return value


PLATFORM = Platform(
    kind="fakemart", label=_l("FakeMart"), base_url="https://api.fakemart.example", range_max=50,
    client=FakeMartClient,
    credentials=(Field("api_key", _l("API key"), kind="secret"),),
    settings=(Field("shop_code", _l("Shop code"), required=True, check=_shop_code),),
)


def create_sandbox(api_key: str, shop_code: str, stock: dict[str, int]) -> Flask:
    """FakeMart's HTTP API: ``GET`` / ``PUT /shops/<code>/stock`` with ``X-Api-Key``."""
    app = Flask("fakemart-sandbox")
    app.config["stock"] = stock

    @app.route("/shops/<code>/stock", methods=["GET", "PUT"])
    def shop_stock(code: str):
        if request.headers.get("X-Api-Key") != api_key:
            return jsonify(error="unauthorized"), 401
        if code != shop_code:
            return jsonify(error="no such shop"), 404
        if request.method == "PUT":
            for identifier, quantity in request.get_json().items():
                if identifier not in stock:
                    return jsonify(error=f"no item {identifier}"), 400
                stock[identifier] = quantity
        return jsonify(stock)

    return app
