"""Shopify stock client over the GraphQL Admin API (platform-apis-channels.md §7).

Identifier: the inventory item id, numeric (``"40000000001"``) or as a global id
(``"gid://shopify/InventoryItem/40000000001"``); a variant's ``inventoryItem.id``.
Results are keyed by the identifiers exactly as given.

Credentials: ``{"access_token": …}`` (sent as ``X-Shopify-Access-Token``). Settings:
``location_id`` (required; numeric or ``gid://shopify/Location/…``), ``api_version``
(default :data:`DEFAULT_API_VERSION`). The base URL is the shop's own,
``https://{shop}.myshopify.com`` (:func:`production_base_url`).

Writes use ``inventorySetQuantities`` on ``available`` with ``changeFromQuantity`` =
``expected`` (compare-and-set; ``null`` when unknown) and ``@idempotent(key:)`` (§7.3, §7.4),
one mutation per batch (its cost does not grow with its quantities). The mutation is all or
nothing, so the writes it refuses are answered from its errors and the rest sent again without
them: each write still succeeds or fails alone; retrying a batch with the same keys replays.
A lost compare-and-set answers ``stale`` with the fresh quantity; the push keeps the listing
dirty and writes again against it.

Orders (§7.5): :meth:`ShopifyClient.read_orders` polls ``orders(query: "updated_at:>=…",
sortKey: UPDATED_AT)``; a line's identifier is its variant's inventory item id, as the catalogue
gives it. Webhooks: :func:`verify_webhook` checks ``X-Shopify-Hmac-SHA256`` against the
``client_secret`` credential, :func:`parse_order_webhook` reads the REST-style order body.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NoReturn

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
from stocklink.platforms.declaration import N_, Field, InvalidValue, Platform
from stocklink.platforms.interfaces import (
    ChannelItem,
    ChannelOrder,
    ChannelOrderLine,
    WebhookDelivery,
    WebhookMalformed,
    WebhookRefused,
)

DEFAULT_BASE_URL = "https://{shop}.myshopify.com"
DEFAULT_API_VERSION = "2026-04"  # changeFromQuantity + @idempotent are mandatory from here (§7.3)
READ_CHUNK = 100
UNKNOWN_ITEM_CODES = {"INVALID_INVENTORY_ITEM", "ITEM_NOT_STOCKED_AT_LOCATION", "NON_MUTABLE_INVENTORY_ITEM"}
STALE_CODES = {"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"}

READ_QUERY = """
query StocklinkRead($ids: [ID!]!, $location: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevel(locationId: $location) { quantities(names: ["available"]) { name quantity } }
    }
  }
}"""

# A page of 50 variants costs about 500 points of the 2000-point bucket (§7.6): pages keep
# coming at the restore rate without meeting THROTTLED.
CATALOGUE_PAGE = 50
DEFAULT_VARIANT_TITLE = "Default Title"  # the one variant of a product without options
CATALOGUE_QUERY = """
query StocklinkCatalogue($first: Int!, $after: String, $location: ID!) {{{count}
  productVariants(first: $first, after: $after) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id title sku
      media(first: 1) {{ nodes {{ preview {{ image {{ url }} }} }} }}
      product {{ id title featuredMedia {{ preview {{ image {{ url }} }} }} }}
      inventoryItem {{
        id tracked
        inventoryLevel(locationId: $location) {{ quantities(names: ["available"]) {{ name quantity }} }}
      }}
    }}
  }}
}}"""
# limit: null asks for the exact count instead of one capped at 10,000.
CATALOGUE_COUNT = "\n  productVariantsCount(limit: null) { count precision }"

CONNECTION_QUERY = """
query StocklinkConnection($location: ID!) {
  shop { name }
  location(id: $location) { id name }
}"""

# Orders (§7.5): a page is priced by what it may hold (2 + orders × (4 + lines × 6) points of
# the bucket, §7.6), not by what it holds. Most web orders have one to three lines, so a page
# asks for 3 of each order's lines: 222 points for 10 orders (642 with 10 lines each). An order
# with more has the rest read by ORDER_LINES_QUERY, MORE_LINES_PAGE at a time.
ORDER_PAGE = 10
ORDER_LINE_PAGE = 3
MORE_LINES_PAGE = 50
ORDER_LINE_FIELDS = """
fragment StocklinkLine on LineItem {
  id sku title quantity currentQuantity
  originalUnitPriceSet { shopMoney { amount currencyCode } }
  variant { id inventoryItem { id } }
}"""
ORDERS_QUERY = """
query StocklinkOrders($first: Int!, $after: String, $query: String!, $lines: Int!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id createdAt updatedAt cancelledAt displayFulfillmentStatus
      lineItems(first: $lines) { pageInfo { hasNextPage endCursor } nodes { ...StocklinkLine } }
    }
  }
}""" + ORDER_LINE_FIELDS
# What changed (id and time only): 2 points an order, so a poll's overlap window costs little and
# only the orders not yet taken in are read whole (by ORDER_QUERY, or ORDERS_QUERY from the
# oldest of them when there are many).
ORDER_CHANGES_PAGE = 100
ORDER_CHANGES_QUERY = """
query StocklinkOrderChanges($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes { id updatedAt }
  }
}"""
ORDER_LINES_QUERY = """
query StocklinkOrderLines($id: ID!, $first: Int!, $after: String) {
  order(id: $id) {
    lineItems(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { ...StocklinkLine } }
  }
}""" + ORDER_LINE_FIELDS
ORDER_QUERY = """
query StocklinkOrder($id: ID!, $lines: Int!) {
  order(id: $id) {
    id createdAt updatedAt cancelledAt displayFulfillmentStatus
    lineItems(first: $lines) { pageInfo { hasNextPage endCursor } nodes { ...StocklinkLine } }
  }
}""" + ORDER_LINE_FIELDS
# displayFulfillmentStatus values (OrderDisplayFulfillmentStatus); OPEN and PENDING_FULFILLMENT
# are older names Shopify replaced by UNFULFILLED and IN_PROGRESS.
ORDER_STATUSES = (
    ("UNFULFILLED", _l("Unfulfilled")),
    ("PARTIALLY_FULFILLED", _l("Partially fulfilled")),
    ("FULFILLED", _l("Fulfilled")),
    ("IN_PROGRESS", _l("Fulfillment in progress")),
    ("ON_HOLD", _l("Fulfillment on hold")),
    ("SCHEDULED", _l("Fulfillment scheduled")),
    ("REQUEST_DECLINED", _l("Fulfillment request declined")),
    ("RESTOCKED", _l("Restocked")),
    ("FULFILLMENT_NOT_REQUIRED", _l("Fulfillment not required")),
)
# A webhook body's ``fulfillment_status`` folded into the displayFulfillmentStatus words.
WEBHOOK_FULFILLMENT = {None: "UNFULFILLED", "partial": "PARTIALLY_FULFILLED", "fulfilled": "FULFILLED",
                       "restocked": "RESTOCKED"}
# Topics whose body is the order itself (orders/edited sends an ``order_edit`` instead).
ORDER_TOPICS = {"orders/create", "orders/updated", "orders/cancelled", "orders/fulfilled",
                "orders/partially_fulfilled", "orders/paid"}

# One mutation for a whole batch: Shopify charges a mutation 10 points plus its selection, however
# many quantities it carries, where one aliased mutation per write cost 13 points each (a backlog of
# 25 writes, 325 points, was a third of a Standard shop's bucket). The mutation is all or nothing.
SET_MUTATION = """mutation StocklinkSet($input0: InventorySetQuantitiesInput!, $key0: String!) {
  w0: inventorySetQuantities(input: $input0) @idempotent(key: $key0) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}"""


def production_base_url(shop: str) -> str:
    """``https://{shop}.myshopify.com`` for a shop handle or a full myshopify domain."""
    return DEFAULT_BASE_URL.format(shop=shop.removesuffix(".myshopify.com"))


def _gid(kind: str, value: str | int) -> str:
    text = str(value).strip()
    if text.startswith("gid://"):
        return text
    if not text.isdigit():
        raise ValueError(f"not a Shopify {kind} id: {value!r}")
    return f"gid://shopify/{kind}/{text}"


class ShopifyClient(ChannelClient):
    """Reads and writes ``available`` at one location; see the module docstring."""

    kind = "shopify"
    # Quantities per mutation: Shopify documents no limit for the list; 250 is the figure users report.
    max_batch = 100
    catalogue_page = CATALOGUE_PAGE
    catalogue_total: int | None = None

    def setup(self) -> None:
        if not self.settings.get("location_id"):
            raise ValueError("Shopify needs settings['location_id']")
        self.location = _gid("Location", self.settings["location_id"])
        self.api_version = self.settings.get("api_version", DEFAULT_API_VERSION)

    def _graphql(self, query: str, variables: dict) -> dict:
        """POST one GraphQL document and return ``data``; raises on transport-level errors."""
        return self._graphql_body(query, variables).get("data") or {}

    def _graphql_body(self, query: str, variables: dict) -> dict:
        """POST one GraphQL document and return the whole body (``data``, ``extensions``)."""
        url = f"{self.base_url}/admin/api/{self.api_version}/graphql.json"
        headers = {"X-Shopify-Access-Token": self.credentials.get("access_token", "").strip(),
                   "Content-Type": "application/json", "Accept": "application/json"}
        response = send(self.session, "POST", url, timeout=self.timeout, headers=headers,
                        json={"query": query, "variables": variables})
        status = response.status_code
        if status in (401, 402, 403, 404):
            # 401 bad token, 402 shop frozen, 403 missing scope, 404 wrong shop or version.
            raise AuthError(f"Shopify refused the request ({status})", status=status)
        if status == 429 or status >= 500:
            raise TemporaryError(f"Shopify unavailable ({status})", status=status,
                                 retry_after=retry_after_seconds(response))
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError(f"Shopify answered non-JSON ({status})", status=status) from exc
        if status != 200:
            raise PlatformError(f"Shopify HTTP {status}", status=status)
        errors = body.get("errors") or []
        if errors:
            raise _graphql_error(errors, body.get("extensions") or {})
        return body

    def test_connection(self) -> ConnectionCheck:
        """Check the token and that the configured location exists."""
        data = self._graphql(CONNECTION_QUERY, {"location": self.location})
        if not data.get("location"):
            raise PlatformError("Shopify: the configured location does not exist", code="INVALID_LOCATION")
        return ConnectionCheck(account=data["shop"]["name"], location=data["location"]["name"])

    def read_stock(self, identifiers: list[str]) -> dict[str, int | None]:
        """``available`` at the location per item; ``None`` if unknown or not stocked there."""
        gids = {ident: _gid("InventoryItem", ident) for ident in identifiers}
        unique = list(dict.fromkeys(gids.values()))
        found: dict[str, int | None] = {}
        for start in range(0, len(unique), READ_CHUNK):
            chunk = unique[start:start + READ_CHUNK]
            data = self._graphql(READ_QUERY, {"ids": chunk, "location": self.location})
            for wanted, node in zip(chunk, data.get("nodes") or [], strict=False):
                level = (node or {}).get("inventoryLevel")
                quantities = {q["name"]: q["quantity"] for q in (level or {}).get("quantities", [])}
                found[wanted] = quantities.get("available") if level else None
        return {ident: found.get(g) for ident, g in gids.items()}

    def list_catalogue(self, *, pace_s: float = 0.0) -> Iterator[ChannelItem]:
        """Every product variant via the ``productVariants`` connection, paged by cursor.

        ``identifier`` is the variant's inventory item id (numeric, as :meth:`read_stock` takes it);
        ``code`` the variant ``sku`` (§0); ``stock`` ``available`` at the configured location, ``None``
        when inventory is not tracked or the item is not stocked there; ``extra`` keeps
        ``variant_id``, ``product_id``, ``inventory_item_id`` (global ids) and ``tracked``;
        ``image_url`` the variant's own image, else the product's featured one.
        :attr:`catalogue_total` is ``productVariantsCount`` (``None`` unless exact).

        Cost (§7.6): before a page the client waits until the bucket holds what the previous page
        cost, and a THROTTLED page is sent again after the wait Shopify's cost block implies.
        """
        after, page, needed = None, 0, 0.0
        while True:
            pause_between_pages(pace_s, page)
            if needed:
                time.sleep(needed)
            query = CATALOGUE_QUERY.format(count=CATALOGUE_COUNT if page == 0 else "")
            variables = {"first": self.catalogue_page, "after": after, "location": self.location}
            body = page_with_retries(lambda q=query, v=variables: self._graphql_body(q, v))
            data = body.get("data") or {}
            if page == 0:
                count = data.get("productVariantsCount") or {}
                exact = count.get("precision") == "EXACT" and isinstance(count.get("count"), int)
                self.catalogue_total = count["count"] if exact else None
            connection = data.get("productVariants") or {}
            for node in connection.get("nodes") or []:
                yield _catalogue_item(node)
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return
            after, page = info["endCursor"], page + 1
            needed = _refill_wait((body.get("extensions") or {}).get("cost") or {})

    def read_orders(self, since: datetime, *, pace_s: float = 0.0) -> Iterator[ChannelOrder]:
        """Every order whose ``updatedAt`` is at or after ``since`` (``updated_at:>=`` to the
        second, so the boundary second is read again), oldest change first, cancelled ones
        included. A line's ``identifier`` is its variant's inventory item id (numeric, as
        :meth:`list_catalogue` gives it; ``""`` for a line whose variant was deleted); ``line_id``
        the line item id; ``quantity`` ``currentQuantity`` (0 once removed or restocked);
        ``status`` ``displayFulfillmentStatus``. Pacing and errors as :meth:`list_catalogue`.

        :raise ValueError: ``since`` without a time zone."""
        for node in self._order_nodes(ORDERS_QUERY, since, {"first": ORDER_PAGE, "lines": ORDER_LINE_PAGE}, pace_s):
            yield self._order(node, pace_s)

    def list_order_changes(self, since: datetime, *, pace_s: float = 0.0) -> Iterator[tuple[str, datetime]]:
        """``(order id, updatedAt)`` of every order :meth:`read_orders` would give, oldest change
        first, 100 a page at 202 points (a page of whole orders: 222 for 10)."""
        for node in self._order_nodes(ORDER_CHANGES_QUERY, since, {"first": ORDER_CHANGES_PAGE}, pace_s):
            yield _number(node.get("id")), _moment(node.get("updatedAt"))

    def _order_nodes(self, query: str, since: datetime, variables: dict, pace_s: float) -> Iterator[dict]:
        """Every node of the ``orders`` connection changed at or after ``since``, page by page,
        waiting for the bucket to hold what the last page cost (§7.6)."""
        if since.tzinfo is None:
            raise ValueError("read_orders needs an aware datetime")
        moment = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        variables = {**variables, "after": None, "query": f"updated_at:>='{moment}'"}
        page, needed = 0, 0.0
        while True:
            pause_between_pages(pace_s, page)
            if needed:
                time.sleep(needed)
            body = page_with_retries(lambda v=dict(variables): self._graphql_body(query, v))
            connection = (body.get("data") or {}).get("orders") or {}
            yield from connection.get("nodes") or []
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return
            variables["after"], page = info["endCursor"], page + 1
            needed = _refill_wait((body.get("extensions") or {}).get("cost") or {})

    def read_order(self, order_id: str) -> ChannelOrder | None:
        """One order by its id, as :meth:`read_orders` gives it (what an order webhook names: one
        query of a few dozen points instead of a page of every recent order); None when Shopify
        has no such order. Errors as :meth:`read_orders`."""
        variables = {"id": _gid("Order", order_id), "lines": ORDER_LINE_PAGE}
        data = page_with_retries(lambda: self._graphql(ORDER_QUERY, variables))
        node = data.get("order")
        return self._order(node, 0.0) if node else None

    def _order(self, node: dict, pace_s: float) -> ChannelOrder:
        """One order node, with the lines beyond its first page read by ORDER_LINES_QUERY."""
        connection = node.get("lineItems") or {}
        lines = list(connection.get("nodes") or [])
        info = connection.get("pageInfo") or {}
        while info.get("hasNextPage") and info.get("endCursor"):
            pause_between_pages(pace_s, 1)
            variables = {"id": node["id"], "first": MORE_LINES_PAGE, "after": info["endCursor"]}
            data = page_with_retries(lambda v=variables: self._graphql(ORDER_LINES_QUERY, v))
            connection = ((data.get("order") or {}).get("lineItems")) or {}
            lines.extend(connection.get("nodes") or [])
            info = connection.get("pageInfo") or {}
        return ChannelOrder(
            order_id=_number(node.get("id")),
            ordered_at=_moment(node.get("createdAt")),
            updated_at=_moment(node.get("updatedAt")),
            status=str(node.get("displayFulfillmentStatus") or ""),
            cancelled=node.get("cancelledAt") is not None,
            lines=tuple(_order_line(line) for line in lines),
        )

    def write_mode(self, write: StockWrite) -> str:
        return "compare_and_set" if write.expected is not None else "absolute"

    def write_stock(self, writes: list[StockWrite]) -> list[WriteResult]:
        """Compare-and-set the writes (§7.3) in one ``inventorySetQuantities``; a lost one answers
        ``stale`` with the fresh quantity.

        The mutation applies all of its quantities or none: when some are refused (stale, an unknown
        item), their outcomes are taken from the errors (each names its quantity by index) and the
        rest are sent again without them, so each write still succeeds or fails alone. A batch's
        key is derived from its writes' keys: the same batch sent again replays."""
        for w in writes:
            if w.quantity < 0:
                raise ValueError("Shopify quantities cannot be negative; clamp before writing")
        results: list[WriteResult | None] = [None] * len(writes)
        left = list(range(len(writes)))
        while left:  # each round that is refused settles at least one write, or raises
            refused, group = self._set_quantities([writes[i] for i in left])
            if not refused:
                for i in left:
                    results[i] = WriteResult(writes[i].identifier, "ok", confirmed=writes[i].quantity, ref=group)
                break
            for position, result in refused.items():
                results[left[position]] = result
            left = [i for position, i in enumerate(left) if position not in refused]
        stale = [i for i, r in enumerate(results) if r is not None and r.status == "stale"]
        if stale:
            fresh = self.read_stock([writes[i].identifier for i in stale])
            for i in stale:
                results[i].confirmed = fresh.get(writes[i].identifier)
        return results

    def _set_quantities(self, batch: list[StockWrite]) -> tuple[dict[int, WriteResult], str | None]:
        """Send one mutation; returns the refused writes' outcomes by their position in ``batch``
        (empty: all applied) and the adjustment group's id. Raises for an error that is not one
        write's (the input's, or the idempotency key's)."""
        # A write without a key gets a random one: no safe retry, better than none.
        keys = [w.key or str(uuid.uuid4()) for w in batch]
        key = keys[0] if len(keys) == 1 else "sl-batch-" + hashlib.sha256("|".join(keys).encode()).hexdigest()[:40]
        variables = {"key0": key, "input0": {
            "name": "available", "reason": "correction",
            "referenceDocumentUri": f"gid://stocklink/StockWrite/{key}",
            # changeFromQuantity must be present: null opts out of the check (§7.3).
            "quantities": [{"inventoryItemId": _gid("InventoryItem", w.identifier), "locationId": self.location,
                            "quantity": w.quantity, "changeFromQuantity": w.expected} for w in batch],
        }}
        payload = self._graphql(SET_MUTATION, variables).get("w0") or {}
        errors = payload.get("userErrors") or []
        group = (payload.get("inventoryAdjustmentGroup") or {}).get("id")
        by_position: dict[int, list] = {}
        general = []
        for error in errors:
            path = [str(part) for part in error.get("field") or []]
            if len(path) >= 3 and path[:2] == ["input", "quantities"] and path[2].isdigit() \
                    and int(path[2]) < len(batch):
                by_position.setdefault(int(path[2]), []).append(error)
            else:
                general.append(error)
        if general:
            _refuse(general)
        return {position: self._outcome(batch[position], errs) for position, errs in by_position.items()}, group

    @staticmethod
    def _outcome(write: StockWrite, errors: list[dict]) -> WriteResult:
        """The outcome of one write Shopify refused; raises for a refusal that is not the write's
        own (:func:`_refuse`)."""
        codes, detail = _codes_and_detail(errors)
        if codes & STALE_CODES:
            return WriteResult(write.identifier, "stale", detail=detail,
                               extra={"code": "CHANGE_FROM_QUANTITY_STALE"})
        if codes & UNKNOWN_ITEM_CODES:
            return WriteResult(write.identifier, "unknown_item", detail=f"Shopify: {detail}",
                               extra={"code": sorted(codes & UNKNOWN_ITEM_CODES)[0]})
        _refuse(errors)


def _codes_and_detail(errors: list[dict]) -> tuple[set, str]:
    """User errors' codes, and their messages joined for the record (300 characters at most)."""
    return {e.get("code") for e in errors}, "; ".join(str(e.get("message", "")) for e in errors)[:300]


def _refuse(errors: list[dict]) -> NoReturn:
    """Raise for user errors that no write's outcome covers. Nothing of the mutation was applied
    (it is all or nothing), so sending it again is safe."""
    codes, detail = _codes_and_detail(errors)
    if "IDEMPOTENCY_CONCURRENT_REQUEST" in codes:
        raise TemporaryError("Shopify: same idempotency key already in flight",
                             code="IDEMPOTENCY_CONCURRENT_REQUEST", retry_after=1.0)
    # A stocklink bug or a settings problem (INVALID_LOCATION, IDEMPOTENCY_KEY_PARAMETER_MISMATCH…).
    code = sorted(c for c in codes if c)[0] if any(codes) else None
    raise PlatformError(f"Shopify refused a write: {detail}", code=code)


_THROTTLED = re.compile(r"throttled", re.IGNORECASE)


def _catalogue_item(node: dict) -> ChannelItem:
    item = node.get("inventoryItem") or {}
    product = node.get("product") or {}
    tracked = bool(item.get("tracked"))
    level = item.get("inventoryLevel")
    quantities = {q.get("name"): q.get("quantity") for q in (level or {}).get("quantities") or []}
    own = next(iter((node.get("media") or {}).get("nodes") or []), None) or {}
    image = _preview_url(own) or _preview_url(product.get("featuredMedia") or {})
    title = node.get("title")
    return ChannelItem(
        identifier=str(item.get("id", "")).rpartition("/")[2],
        name=str(product.get("title") or ""),
        code=node.get("sku") or None,
        stock=quantities.get("available") if tracked and level else None,
        variation=title if title and title != DEFAULT_VARIANT_TITLE else None,
        image_url=image or None,
        extra={"variant_id": node.get("id"), "product_id": product.get("id"),
               "inventory_item_id": item.get("id"), "tracked": tracked},
    )


def _number(global_id) -> str:
    """The numeric part of a global id (``gid://shopify/Order/5`` → ``"5"``)."""
    return str(global_id or "").rpartition("/")[2]


def _moment(text) -> datetime:
    """An ISO-8601 time from Shopify (``Z`` or an offset) as aware UTC."""
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return moment.astimezone(UTC)


def _yen(amount) -> int | None:
    """A money amount (``"1200.0"``) as whole yen; ``None`` when absent or not a number."""
    try:
        return int(Decimal(str(amount))) if amount is not None else None
    except (InvalidOperation, ValueError):
        return None


def _order_line(node: dict) -> ChannelOrderLine:
    item = ((node.get("variant") or {}).get("inventoryItem") or {}).get("id")
    money = (node.get("originalUnitPriceSet") or {}).get("shopMoney") or {}
    return ChannelOrderLine(
        line_id=_number(node.get("id")),
        identifier=_number(item),
        quantity=int(node.get("currentQuantity") or 0),
        code=node.get("sku") or None,
        title=str(node.get("title") or ""),
        unit_price=_yen(money.get("amount")) if money.get("currencyCode", "JPY") == "JPY" else None,
    )


def check_order_webhook(credentials: dict, headers, body: bytes) -> WebhookDelivery:
    """One ``orders/*`` delivery (§7.5): signed with the app's client secret, its topic an order
    topic, its delivery id present. The body is only checked to name an order: the order itself is
    read back from the Admin API, so a webhook and a poll of one change are the same order.

    :raise WebhookRefused: no client secret saved, or the signature does not match.
    :raise WebhookMalformed: not an order topic, no delivery id, or a body without an order id."""
    if not verify_webhook(credentials.get("client_secret") or "", body, headers.get("X-Shopify-Hmac-SHA256")):
        raise WebhookRefused("the signature does not match the client secret")
    topic = headers.get("X-Shopify-Topic") or ""
    if topic not in ORDER_TOPICS:
        raise WebhookMalformed(f"not an order topic: {topic[:60]!r}")
    delivery = headers.get("X-Shopify-Webhook-Id") or headers.get("X-Shopify-Event-Id") or ""
    if not delivery or len(delivery) > 100:
        raise WebhookMalformed("no X-Shopify-Webhook-Id")
    try:
        order = json.loads(body)
        order_id = _webhook_id(order, "id")
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, WebhookPayloadError):
        raise WebhookMalformed("the body names no order id") from None
    return WebhookDelivery(topic, delivery, order_id)


class WebhookPayloadError(ValueError):
    """A webhook body that is not a usable Shopify order (bad JSON, a missing or wrong field)."""


def verify_webhook(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Shopify-Hmac-SHA256``) is the base64 HMAC-SHA256 of the raw
    ``body`` with the app's client ``secret`` (§7.5), compared in constant time. False for a
    missing, empty or garbled header and for an empty secret (anyone could sign with that)."""
    if not secret or not header or not isinstance(header, str):
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)


def parse_order_webhook(topic: str, body: bytes, *,
                        variant_items: Mapping[str, str] | None = None) -> ChannelOrder:
    """The order of an ``orders/*`` webhook body (REST-style JSON), as :meth:`read_orders` gives it.

    The body names each line's variant, not its inventory item: a line's ``identifier`` is
    ``variant_items[variant id]`` (numeric variant ids or global ids, as
    :attr:`ChannelItem.extra` ``variant_id`` holds them, to listing identifiers), ``""`` when the
    variant is not in ``variant_items`` or was deleted — a caller without the map re-reads the
    order with :meth:`ShopifyClient.read_orders` from its ``updated_at``. ``status`` folds
    ``fulfillment_status`` into the displayFulfillmentStatus words (``null`` → ``UNFULFILLED``,
    ``partial``, ``fulfilled``, ``restocked``); ``quantity`` is ``current_quantity``.

    :raise WebhookPayloadError: an unknown topic, a body that is not a JSON object, or a missing
        or malformed ``id``, ``created_at``, ``updated_at`` or ``line_items`` entry."""
    if topic not in ORDER_TOPICS:
        raise WebhookPayloadError(f"not an order webhook topic: {topic!r}")
    try:
        order = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookPayloadError(f"webhook body is not JSON: {exc}") from None
    if not isinstance(order, dict):
        raise WebhookPayloadError("webhook body is not a JSON object")
    items = {_number(k): str(v) for k, v in (variant_items or {}).items()}
    try:
        order_id = _webhook_id(order, "id")
        lines = order["line_items"]
        if not isinstance(lines, list):
            raise WebhookPayloadError("line_items is not a list")
        parsed = []
        for line in lines:
            if not isinstance(line, dict):
                raise WebhookPayloadError("a line item is not an object")
            quantity = line["current_quantity"] if "current_quantity" in line else line["quantity"]
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
                raise WebhookPayloadError(f"line item {line.get('id')}: bad quantity {quantity!r}")
            variant = line.get("variant_id")
            parsed.append(ChannelOrderLine(
                line_id=_webhook_id(line, "id"),
                identifier=items.get(str(variant), "") if variant is not None else "",
                quantity=quantity, code=line.get("sku") or None, title=str(line.get("title") or ""),
                unit_price=_yen(line.get("price")) if order.get("currency", "JPY") == "JPY" else None))
        fulfillment = order.get("fulfillment_status")
        return ChannelOrder(
            order_id=order_id, ordered_at=_moment(order["created_at"]),
            updated_at=_moment(order["updated_at"]),
            status=WEBHOOK_FULFILLMENT.get(fulfillment, str(fulfillment).upper()),
            cancelled=order.get("cancelled_at") is not None or topic == "orders/cancelled",
            lines=tuple(parsed))
    except WebhookPayloadError:
        raise
    except KeyError as exc:
        raise WebhookPayloadError(f"webhook body lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:  # a time that is not ISO-8601, a field of the wrong type
        raise WebhookPayloadError(f"webhook body has a malformed field: {exc}") from None


def _webhook_id(obj: dict, key: str) -> str:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise WebhookPayloadError(f"{key} is not a Shopify id: {value!r}")
    return str(value)


def _preview_url(media: dict) -> str | None:
    return ((media.get("preview") or {}).get("image") or {}).get("url")


def _refill_wait(cost: dict) -> float:
    """Seconds until the bucket again holds what the last page cost (§7.6); 0 if it already does."""
    try:
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(0.0, missing) / float(status["restoreRate"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 0.0


def _graphql_error(errors: list, extensions: dict) -> PlatformError:
    """Map top-level GraphQL ``errors`` (§7.6: THROTTLED carries a cost block)."""
    first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
    code = (first.get("extensions") or {}).get("code")
    message = str(first.get("message", ""))[:300]
    if code == "THROTTLED" or _THROTTLED.search(message):
        cost = extensions.get("cost") or {}
        status = cost.get("throttleStatus") or {}
        retry_after = None
        try:
            missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
            retry_after = max(missing, 1.0) / float(status["restoreRate"])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            retry_after = 1.0
        return TemporaryError("Shopify throttled the request", code="THROTTLED", retry_after=retry_after)
    if code == "ACCESS_DENIED":
        return AuthError(f"Shopify: {message}", code=code)
    if code in ("INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"):
        return TemporaryError(f"Shopify: {message}", code=code)
    return PlatformError(f"Shopify GraphQL error: {message}", code=code)


def _location_id(value: str) -> str:
    try:
        _gid("Location", value)
    except ValueError:
        raise InvalidValue(N_("must be a location id (digits) or %(example)s"),
                           example="gid://shopify/Location/…") from None
    return value


def _api_version(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}", value):
        raise InvalidValue(N_("must look like %(example)s"), example="2026-04")
    return value


PLATFORM = Platform(
    kind="shopify", label=_l("Shopify"), base_url=DEFAULT_BASE_URL, range_max=999_999,
    rate_per_s=2.0,  # cost-based, 100 points/s restored; a page of variants costs ~50
    client=ShopifyClient,
    credentials=(Field("access_token", _l("Admin API access token"), kind="secret"),
                 Field("client_secret", _l("Client secret"), kind="secret",
                       help=_l("Checks that order webhooks really come from Shopify"))),
    settings=(Field("location_id", _l("Location ID"), required=True, check=_location_id,
                    help=_l("The location whose available stock stocklink sets")),
              Field("api_version", _l("API version"), default=DEFAULT_API_VERSION, check=_api_version)),
    order_statuses=ORDER_STATUSES,
    # Stock leaves with the order, whatever its fulfilment: every status counts by default.
    order_statuses_default=tuple(value for value, _label in ORDER_STATUSES),
    order_webhook=check_order_webhook,
)
