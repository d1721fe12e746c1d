"""ColorMe Shop (カラーミーショップ) stock client (platform-apis-channels.md §1).

Identifier: the product id (``"123456"``) for a product without options, or the
product id plus its option values for a variant, joined by ``:`` —
``"123456:赤:S"`` (two options) or ``"123456:赤"`` (one). ColorMe addresses variants by
option *values*, not ids (§1.5); a ``%`` or ``:`` inside a value is written ``%25`` /
``%3A``. Build and split identifiers with :func:`make_identifier` / :func:`parse_identifier`.

Credentials: ``{"access_token": …}`` — an OAuth bearer token that never expires but can
be revoked by the shop (§1.2); reading orders needs the ``read_sales`` scope. Settings: none
are needed.

Orders (§1.6): :meth:`ColorMeClient.read_orders` reads ``GET /v1/sales`` by ``update_date_min``;
a line's identifier is built from its ``product_id`` and option values exactly as
:meth:`ColorMeClient.list_catalogue` builds a listing's, so an order line finds its listing.

Writes (§1.5): one ``PUT /v1/products/{id}.json`` per write (ColorMe has no bulk
endpoint), so :attr:`ColorMeClient.max_batch` is 1. With ``expected`` known the client
sends ``{"increment": quantity - expected}`` so that sales ColorMe took in the meantime
are not undone (SPEC §11.6); otherwise it sends the absolute quantity. A timeout on
a relative write is ambiguous (the increment may have been applied): read back before
retrying.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import requests
from flask_babel import lazy_gettext as _l

from stocklink.platforms.base import (
    AuthError,
    ChannelClient,
    ConnectionCheck,
    PlatformError,
    StockWrite,
    TemporaryError,
    WriteResult,
    page_with_retries,
    pause_between_pages,
    retry_after_seconds,
    send,
)
from stocklink.platforms.declaration import Field, Platform
from stocklink.platforms.interfaces import ChannelItem, ChannelOrder, ChannelOrderLine

DEFAULT_BASE_URL = "https://api.shop-pro.jp"

NOT_FOUND_CODE = 404100  # §1.8: {"errors":[{"code":404100,"message":"レコードが見つかりませんでした。"}]}
PAGE_LIMIT = 50  # §1.4: limit max 50 on /v1/stocks and /v1/products
# §1.4: the spec advises ``fields`` because large option sets make /v1/products slow.
CATALOGUE_FIELDS = "id,name,model_number,stocks,stock_managed,image_url,variants"
SALES_LIMIT = 100  # §1.6: /v1/sales limit max 100
SALES_FIELDS = "id,make_date,update_date,paid,delivered,canceled,details"
JST = timezone(timedelta(hours=9))  # the shop's dates are Japan time


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


def _unescape(value: str) -> str:
    return value.replace("%3A", ":").replace("%3a", ":").replace("%25", "%")


def make_identifier(product_id: int | str, option1: str | None = None,
                    option2: str | None = None) -> str:
    """The identifier of a product (no options) or of one variant (option values)."""
    parts = [str(int(product_id))]
    if option1 is not None or option2 is not None:
        parts.append(_escape(option1 or ""))
        if option2 is not None:
            parts.append(_escape(option2))
    return ":".join(parts)


def parse_identifier(identifier: str) -> tuple[int, str | None, str | None]:
    """``(product_id, option1_value, option2_value)``; raises ``ValueError`` if malformed."""
    parts = identifier.split(":")
    if len(parts) > 3 or not parts[0].isdigit():
        raise ValueError(f"not a ColorMe identifier: {identifier!r}")
    values = [_unescape(p) for p in parts[1:]] + [None, None]
    return int(parts[0]), values[0], values[1]


def _option_key(option1, option2) -> tuple[str, str]:
    # ColorMe shows a missing second option as null or "" depending on the endpoint.
    return (option1 or "", option2 or "")


class ColorMeClient(ChannelClient):
    """Reads and writes ColorMe stock; see the module docstring for identifiers."""

    kind = "colorme"
    max_batch = 1
    read_batch = PAGE_LIMIT  # GET /v1/stocks takes up to 50 product ids a request (§1.4)
    catalogue_total: int | None = None  # products (§1.4 meta.total), each one or more items

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send one API request; returns 200 and 404100 responses, raises on the rest."""
        token = self.credentials.get("access_token", "").strip()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        response = send(self.session, method, f"{self.base_url}{path}", timeout=self.timeout,
                        headers=headers, **kwargs)
        if response.status_code == 200:
            return response
        code, message = _first_error(response)
        status = response.status_code
        if status == 404 and code == NOT_FOUND_CODE:
            return response
        if status in (401, 403):
            raise AuthError(f"ColorMe refused the access token ({status})", code=code, status=status)
        if status == 429:
            raise TemporaryError("ColorMe rate limit reached", code=code, status=status,
                                 retry_after=retry_after_seconds(response))
        if status >= 500:
            raise TemporaryError(f"ColorMe unavailable ({status}): {message}", code=code, status=status,
                                 retry_after=retry_after_seconds(response))
        raise PlatformError(f"ColorMe {method} {path} failed ({status}): {message}",
                            code=code, status=status)

    def test_connection(self) -> ConnectionCheck:
        """Read one product to prove the token and ``read_products`` scope work."""
        response = self._request("GET", "/v1/products.json", params={"limit": 1, "fields": "id"})
        total = _json(response).get("meta", {}).get("total")
        return ConnectionCheck(products=total if isinstance(total, int) else None)

    def read_stock(self, identifiers: list[str]) -> dict[str, int | None]:
        """Stock per identifier via ``GET /v1/stocks.json?ids=…`` (§1.4).

        ``None`` for an unknown product or option, for a product whose stock is kept per
        option (its product-level identifier has no stock of its own), and for a product
        whose stock management is off.
        """
        wanted = {ident: parse_identifier(ident) for ident in identifiers}
        product_ids = sorted({pid for pid, _, _ in wanted.values()})
        rows: dict[tuple[int, str, str], int | None] = {}
        for start in range(0, len(product_ids), PAGE_LIMIT):
            chunk = product_ids[start:start + PAGE_LIMIT]
            for row in self._stock_rows(chunk):
                key = (int(row["product_id"]), *_option_key(row.get("option1_value"),
                                                             row.get("option2_value")))
                rows[key] = row.get("stocks")
        return {ident: rows.get((pid, *_option_key(o1, o2)))
                for ident, (pid, o1, o2) in wanted.items()}

    def _stock_rows(self, product_ids: list[int]):
        offset = 0
        while True:
            params = {"ids": ",".join(map(str, product_ids)), "limit": PAGE_LIMIT, "offset": offset,
                      "fields": "product_id,option1_value,option2_value,stocks"}
            body = _json(self._request("GET", "/v1/stocks.json", params=params))
            stocks = body.get("stocks", [])
            yield from stocks
            offset += len(stocks)
            if not stocks or offset >= int(body.get("meta", {}).get("total", 0)):
                return

    def list_catalogue(self, *, pace_s: float = 0.0) -> Iterator[ChannelItem]:
        """Every product of the shop via ``GET /v1/products`` (§1.4), 50 a page by ``offset``:
        one item for a product without options, one per variant otherwise.

        ``code`` is the variant's 型番, or the product's for a product without options (§1.7);
        ``stock`` is ``None`` where stock management is off; ``extra`` keeps ``product_id``,
        ``option1_value`` / ``option2_value`` and ``stock_managed``. :attr:`catalogue_total`
        counts products, as ``meta.total`` does.
        """
        offset, page = 0, 0
        while True:
            pause_between_pages(pace_s, page)
            params = {"limit": PAGE_LIMIT, "offset": offset, "fields": CATALOGUE_FIELDS}
            body = page_with_retries(lambda p=params: _json(self._request("GET", "/v1/products.json",
                                                                          params=p)))
            total = body.get("meta", {}).get("total")
            self.catalogue_total = total if isinstance(total, int) else None
            products = body.get("products") or []
            for product in products:
                yield from _catalogue_items(product)
            offset += len(products)
            page += 1
            if not products or self.catalogue_total is None or offset >= self.catalogue_total:
                return

    def read_orders(self, since: datetime, *, pace_s: float = 0.0) -> Iterator[ChannelOrder]:
        """Every sale changed at or after ``since`` via ``GET /v1/sales?update_date_min=…`` (§1.6),
        100 a page by ``offset``, cancelled ones included (``canceled`` true); oldest change first.

        ``since`` is sent as Japan time to the second, rounded down (a second too early is read
        again, never missed). ColorMe documents no order for ``/v1/sales``, so every page is read
        before the sales are given, sorted by ``update_date`` then id; a sale that moved between
        pages while they were read is given once, as last seen. ``status`` folds the flags into
        ``unpaid`` / ``paid`` / ``delivered``.
        """
        since_text = since.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")
        seen: dict[int, dict] = {}
        offset, page = 0, 0
        while True:
            pause_between_pages(pace_s, page)
            params = {"update_date_min": since_text, "limit": SALES_LIMIT, "offset": offset,
                      "fields": SALES_FIELDS}
            body = page_with_retries(lambda p=params: _json(self._request("GET", "/v1/sales.json", params=p)))
            sales = body.get("sales") or []
            for sale in sales:
                known = seen.get(int(sale["id"]))
                if known is None or int(sale["update_date"]) >= int(known["update_date"]):
                    seen[int(sale["id"])] = sale
            offset += len(sales)
            page += 1
            total = body.get("meta", {}).get("total")
            if not sales or not isinstance(total, int) or offset >= total:
                break
        for sale in sorted(seen.values(), key=lambda s: (int(s["update_date"]), int(s["id"]))):
            yield _order(sale)

    def write_mode(self, write: StockWrite) -> str:
        return "relative" if write.expected is not None else "absolute"

    def write_stock(self, writes: list[StockWrite]) -> list[WriteResult]:
        """Write each listing's stock, relatively when ``expected`` is known (§1.5)."""
        return [self._write_one(w) for w in writes]

    def _write_one(self, write: StockWrite) -> WriteResult:
        product_id, option1, option2 = parse_identifier(write.identifier)
        if write.expected is not None:
            change = write.quantity - write.expected
            if change == 0:
                return WriteResult(write.identifier, "ok", confirmed=write.expected,
                                   extra={"mode": "none"})
            stocks: int | dict = {"increment": change}
            extra = {"mode": "increment", "increment": change}
        else:
            stocks = write.quantity
            extra = {"mode": "absolute"}
        is_variant = option1 is not None or option2 is not None
        if is_variant:
            variant = {"option1_value": option1, "stocks": stocks}
            if option2 is not None:
                variant["option2_value"] = option2
            body = {"product": {"variants": [variant]}}
        else:
            body = {"product": {"stocks": stocks}}
        response = self._request("PUT", f"/v1/products/{product_id}.json", json=body)
        if response.status_code == 404:
            return WriteResult(write.identifier, "unknown_item", detail="ColorMe: product not found",
                               extra=extra)
        product = _json(response).get("product", {})
        return self._outcome(write.identifier, product, option1, option2, is_variant, extra)

    @staticmethod
    def _outcome(identifier, product: dict, option1, option2, is_variant: bool,
                 extra: dict) -> WriteResult:
        variants = product.get("variants") or []
        if is_variant:
            for v in variants:
                if _option_key(v.get("option1_value"), v.get("option2_value")) == \
                        _option_key(option1, option2):
                    return WriteResult(identifier, "ok", confirmed=v.get("stocks"), extra=extra)
            # ColorMe's answer to unknown option values is not documented (§9): check the
            # product we got back instead of trusting the 200.
            return WriteResult(identifier, "unknown_item",
                               detail="ColorMe: no option with these values", extra=extra)
        if variants:
            # §1.5: product-level stocks are ignored when stock is kept per option.
            return WriteResult(identifier, "unknown_item",
                               detail="ColorMe keeps this product's stock per option; link a variant",
                               extra=extra)
        if not product.get("stock_managed", True) or product.get("stocks") is None:
            return WriteResult(identifier, "unknown_item",
                               detail="ColorMe: stock management is off for this product", extra=extra)
        return WriteResult(identifier, "ok", confirmed=product.get("stocks"), extra=extra)


def _catalogue_items(product: dict) -> Iterator[ChannelItem]:
    product_id = int(product["id"])
    managed = bool(product.get("stock_managed", True))
    name = str(product.get("name") or "")
    image = product.get("image_url") or None
    variants = product.get("variants") or []
    if not variants:
        yield ChannelItem(identifier=make_identifier(product_id), name=name,
                          code=product.get("model_number") or None,
                          stock=product.get("stocks") if managed else None, image_url=image,
                          extra={"product_id": product_id, "option1_value": None, "option2_value": None,
                                 "stock_managed": managed})
        return
    for v in variants:
        option1, option2 = v.get("option1_value"), v.get("option2_value") or None
        yield ChannelItem(identifier=make_identifier(product_id, option1 or "", option2), name=name,
                          code=v.get("model_number") or None,
                          stock=v.get("stocks") if managed else None, image_url=image,
                          variation=" / ".join(o for o in (option1, option2) if o) or None,
                          extra={"product_id": product_id, "option1_value": option1,
                                 "option2_value": option2, "stock_managed": managed})


def order_status(sale: dict) -> str:
    """The sale's ``paid`` / ``delivered`` flags as one word (:data:`ORDER_STATUSES`)."""
    return "delivered" if sale.get("delivered") else "paid" if sale.get("paid") else "unpaid"


def _moment(unix_seconds) -> datetime:
    return datetime.fromtimestamp(int(unix_seconds), UTC)


def _order(sale: dict) -> ChannelOrder:
    lines = []
    for detail in sale.get("details") or []:
        option1, option2 = detail.get("option1_value"), detail.get("option2_value") or None
        # As _catalogue_items: a product without options is its id alone, a variant its values.
        identifier = make_identifier(detail["product_id"]) if option1 is None and option2 is None \
            else make_identifier(detail["product_id"], option1 or "", option2)
        price = detail.get("price")
        lines.append(ChannelOrderLine(
            line_id=str(detail["id"]), identifier=identifier, quantity=int(detail.get("product_num") or 0),
            code=detail.get("product_model_number") or None,
            title=str(detail.get("pristine_product_full_name") or detail.get("product_name") or ""),
            unit_price=int(price) if price is not None else None))
    return ChannelOrder(order_id=str(sale["id"]), ordered_at=_moment(sale["make_date"]),
                        updated_at=_moment(sale["update_date"]), status=order_status(sale),
                        cancelled=bool(sale.get("canceled")), lines=tuple(lines))


def _json(response: requests.Response) -> dict:
    try:
        body = response.json()
    except ValueError as exc:
        raise PlatformError(f"ColorMe answered non-JSON ({response.status_code})",
                            status=response.status_code) from exc
    return body if isinstance(body, dict) else {}


def _first_error(response: requests.Response) -> tuple[int | None, str]:
    """``(code, message)`` from the §1.8 error envelope, tolerating other bodies."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return first.get("code"), str(first.get("message", ""))[:200]
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, response.reason or ""


ORDER_STATUSES = (("unpaid", _l("Not paid yet")), ("paid", _l("Paid")), ("delivered", _l("Delivered")))

PLATFORM = Platform(
    kind="colorme", label=_l("ColorMe Shop"), base_url=DEFAULT_BASE_URL, range_max=999_999,
    rate_per_s=2.0,  # ~120 req/min per token (guidance, §1)
    client=ColorMeClient,
    credentials=(Field("access_token", _l("Access token"), kind="secret"),),
    # Every sale not cancelled has taken its stock on ColorMe, paid or not (§1.6).
    order_statuses=ORDER_STATUSES,
    order_statuses_default=tuple(value for value, _label in ORDER_STATUSES),
)
