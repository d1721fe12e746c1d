"""A simulated Shopify GraphQL Admin API, inventory part (platform-apis-channels.md §7).

``POST /admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``; real GraphQL
parsing and validation (:mod:`stocklink.sandbox.minigraphql`) over this schema subset:
``shop``, ``location(id)``, ``inventoryItem(id){inventoryLevel(locationId){quantities(names)}}``,
``nodes(ids)`` / ``node(id)``, the catalogue ``productVariants(first, after)`` connection
(``edges{cursor node}``, ``nodes``, ``pageInfo``; ``first`` ≤ 250, cost 2 + first × node cost; a
variant's ``media`` and its product's ``featuredMedia`` for images) with ``productVariantsCount``
(the actual cost is not refunded: the bucket drains as if every page were full), and the
mutation ``inventorySetQuantities(input)`` with the 2026-04 rules: ``@idempotent(key:)`` and
``changeFromQuantity`` on every quantity are mandatory; a mismatch is
``CHANGE_FROM_QUANTITY_STALE`` and nothing is applied (§7.3); the same key with the same
arguments replays the first result, with other arguments it
is ``IDEMPOTENCY_KEY_PARAMETER_MISMATCH`` (§7.4). Cost-based throttling (§7.6): a leaky
bucket (2000 points, 100/s) and ``{"errors":[{"message":"Throttled",…}]}``.

Python control methods on :class:`ShopifySandbox`, mirrored under ``/sandbox/``:

- ``add_location(name)`` → id — ``POST /sandbox/locations``
- ``add_item(sku, available, location_id=None, stocked=True, tracked=True)`` → inventory item id
  (of a new one-variant product) — ``POST /sandbox/items``
- ``add_product(title, variants=[{"title", "sku", "available", "tracked", "stocked"}], image_url=None)``
  → the variants' inventory item ids — ``POST /sandbox/products``
- ``stock(item_id, location_id=None)`` — ``GET /sandbox/items/<id>``
- ``set_stock(item_id, available, location_id=None)`` (a sale Shopify took) —
  ``POST /sandbox/items/<id>/stock``
- ``issue_token()`` / ``revoke_token(token)`` / ``revoke_tokens()`` — ``POST /sandbox/tokens``, ``…/tokens/revoke``
- ``throttle_next(count)`` — ``POST /sandbox/throttle``; ``set_bucket(max, rate)``
- ``adjustments`` (every applied adjustment group) — ``GET /sandbox/adjustments``
- maintenance (503), forced 5xx, delay, request log: :mod:`stocklink.sandbox.common`.

Orders (§7.5): ``place_order(lines, status=None)`` → order id (``lines`` as ``(inventory item id,
quantity)``, the identifier the client writes stock by; ``available`` drops and ``committed``
rises by the quantities, as a Shopify sale does) — ``POST /sandbox/orders``;
``edit_order(order_id, lines)`` (each listed item's current quantity becomes the given one, 0
removes it; stock moves by the difference) — ``POST /sandbox/orders/<id>/edit``;
``cancel_order(order_id)`` (``cancelledAt`` set, every line restocked to current quantity 0) —
``POST /sandbox/orders/<id>/cancel``. Each change moves ``updatedAt`` (second resolution, from
``clock``, which a test may replace). GraphQL: ``orders(first, after, query, sortKey, reverse)``
with ``query`` ``updated_at:>=…`` (also ``>``, ``<``, ``<=``; the value quoted or not) and
``sortKey: UPDATED_AT`` / ``CREATED_AT`` / ``ID``; ``order(id)``; ``Order.lineItems(first, after)``.

Webhooks: ``subscribe(topic, url)`` — ``POST /sandbox/webhooks`` — or the
``webhookSubscriptionCreate`` mutation; each order change POSTs the REST-style order JSON to every
URL subscribed to its topic (``orders/create``, ``orders/updated``, ``orders/cancelled``), signed
with ``client_secret`` (:mod:`stocklink.sandbox.webhooks`: background delivery, ``drop_next``,
``duplicate_next``, ``flush``; the attempts are in ``webhook_log``, ``GET /sandbox/webhooks``).
"""
from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from flask import Flask, jsonify, request

from stocklink.sandbox.common import SandboxState, install
from stocklink.sandbox.minigraphql import (
    FieldDef,
    GraphQLError,
    Schema,
    ValidationFailed,
    execute,
    prepare,
)
from stocklink.sandbox.webhooks import WebhookSender

QUANTITY_NAMES = {"available", "on_hand", "committed", "reserved", "incoming", "damaged",
                  "quality_control", "safety_stock"}
SET_NAMES = {"available", "on_hand"}  # §7.3
REASONS = {"correction", "cycle_count_available", "damaged", "movement_created",
           "movement_updated", "movement_received", "movement_canceled", "other", "promotion",
           "quality_control", "received", "reservation_created", "reservation_deleted",
           "reservation_updated", "restock", "safety_stock", "shrinkage"}
MAX_QUANTITY = 1_000_000_000
MAX_PAGE = 250  # connections: first/last at most 250 (shopify.dev pagination)
COUNT_LIMIT = 10_000  # productVariantsCount's default limit; above it precision is AT_LEAST
DEFAULT_TITLE = "Default Title"  # the one variant of a product without options
UNAUTHORIZED = "[API] Invalid API key or access token (unrecognized login or wrong password)"
SHOP_TZ = timezone(timedelta(hours=9))  # REST payloads give times in the shop's zone (Asia/Tokyo)
WEBHOOK_TOPICS = {"ORDERS_CREATE": "orders/create", "ORDERS_UPDATED": "orders/updated",
                  "ORDERS_CANCELLED": "orders/cancelled"}
ORDER_SORT_KEYS = {"UPDATED_AT": "updated_at", "CREATED_AT": "created_at", "ID": "id"}
_UPDATED_FILTER = re.compile(r"updated_at:(>=|<=|>|<)\s*'?([0-9T:+\-.Z]+)'?")


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def parse_gid(value, kind: str) -> int:
    match = re.fullmatch(rf"gid://shopify/{kind}/(\d+)", str(value or ""))
    if not match:
        raise GraphQLError(f"Invalid global id '{value}'",
                           extensions={"code": "argumentLiteralsIncompatible"})
    return int(match.group(1))


class ShopifySandbox(SandboxState):
    """In-memory Shopify store: locations, inventory items and levels, idempotency keys."""

    def __init__(self, shop_name: str = "stocklink-sandbox", *, bucket_size: float = 2000.0,
                 restore_rate: float = 100.0) -> None:
        super().__init__()
        self.shop_name = shop_name
        self.tokens: set[str] = set()
        self.locations: dict[int, str] = {}
        self.items: dict[int, dict] = {}           # id -> {"sku", "tracked", "variant", "levels": {loc: {name: qty}}}
        self.products: dict[int, dict] = {}        # id -> {"title", "image_url", "variants": [variant ids]}
        self.variants: dict[int, dict] = {}        # id -> {"product", "title", "sku", "item", "image_url"}
        self.idempotency: dict[str, tuple[str, dict]] = {}
        self.adjustments: list[dict] = []
        self.orders: dict[int, dict] = {}          # id -> see place_order
        self.webhooks: list[dict] = []             # {"id", "topic", "url"}
        self.client_secret = "shpss_" + secrets.token_hex(16)
        self.webhook_sender = WebhookSender(self.client_secret, f"{shop_name}.myshopify.com")
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._next_order, self._next_line, self._next_webhook = 5000000001, 13000000001, 1100000001
        self.bucket_size, self.restore_rate = bucket_size, restore_rate
        self._available = bucket_size
        self._last_refill = time.monotonic()
        self._throttle = 0
        self._next_location, self._next_item, self._next_group = 70000000001, 40000000001, 90000000001
        self._next_product, self._next_variant = 8000000001, 45000000001
        self.default_location = self.add_location("本店倉庫")

    def issue_token(self) -> str:
        token = "shpat_" + secrets.token_hex(16)
        with self.lock:
            self.tokens.add(token)
        return token

    def revoke_token(self, token: str) -> None:
        """The app was uninstalled or its token rotated."""
        with self.lock:
            self.tokens.discard(token)

    def revoke_tokens(self) -> None:
        """Every issued token stops working (the app was removed from the shop)."""
        with self.lock:
            self.tokens.clear()

    def add_location(self, name: str) -> int:
        with self.lock:
            location_id = self._next_location
            self._next_location += 1
            self.locations[location_id] = name
            return location_id

    def add_item(self, sku: str, available: int = 0, location_id: int | None = None, *,
                 stocked: bool = True, tracked: bool = True) -> int:
        """Add a product with one variant (``Default Title``) and return its inventory item id,
        stocked at ``location_id`` (default location) unless told not."""
        [item_id] = self.add_product(sku, [{"sku": sku, "available": available, "stocked": stocked,
                                            "tracked": tracked, "location_id": location_id}])
        return item_id

    def add_product(self, title: str, variants: list[dict], *, image_url: str | None = None) -> list[int]:
        """Add a product with ``variants`` (each ``title``, ``sku``, ``available``, ``stocked``,
        ``tracked``, ``location_id``, ``image_url``, ``price`` in yen) and return their inventory item ids, in order."""
        with self.lock:
            product_id = self._next_product
            self._next_product += 1
            self.products[product_id] = {"title": title, "image_url": image_url, "variants": []}
            items = []
            for v in variants or [{}]:
                item_id, variant_id = self._next_item, self._next_variant
                self._next_item += 1
                self._next_variant += 1
                levels = {}
                if v.get("stocked", True):
                    available = int(v.get("available", 0))
                    levels[v.get("location_id") or self.default_location] = {"available": available,
                                                                             "on_hand": available}
                self.items[item_id] = {"sku": v.get("sku", ""), "tracked": bool(v.get("tracked", True)),
                                       "variant": variant_id, "levels": levels}
                self.variants[variant_id] = {"product": product_id, "title": v.get("title") or DEFAULT_TITLE,
                                             "sku": v.get("sku", ""), "item": item_id,
                                             "image_url": v.get("image_url"),
                                             "price": int(v.get("price", 0))}
                self.products[product_id]["variants"].append(variant_id)
                items.append(item_id)
            return items

    def stock(self, item_id: int, location_id: int | None = None) -> int | None:
        with self.lock:
            level = self.items.get(int(item_id), {}).get("levels", {}).get(
                location_id or self.default_location)
            return None if level is None else level["available"]

    def set_stock(self, item_id: int, available: int, location_id: int | None = None) -> None:
        """Set ``available`` as Shopify itself would (a sale, a merchant's edit)."""
        with self.lock:
            level = self.items[int(item_id)]["levels"][location_id or self.default_location]
            level["on_hand"] += int(available) - level["available"]
            level["available"] = int(available)

    def throttle_next(self, count: int = 1) -> None:
        with self.lock:
            self._throttle += count

    def set_bucket(self, size: float, restore_rate: float) -> None:
        with self.lock:
            self.bucket_size, self.restore_rate = size, restore_rate
            self._available = min(self._available, size)

    def spend(self, cost: int) -> tuple[bool, dict]:
        """Take ``cost`` points from the leaky bucket: ``(allowed, extensions.cost)``."""
        with self.lock:
            now = time.monotonic()
            self._available = min(self.bucket_size,
                                  self._available + (now - self._last_refill) * self.restore_rate)
            self._last_refill = now
            forced = self._throttle > 0
            if forced:
                self._throttle -= 1
            allowed = not forced and cost <= self._available
            if allowed:
                self._available -= cost
            return allowed, {
                "requestedQueryCost": cost, "actualQueryCost": cost if allowed else None,
                "throttleStatus": {"maximumAvailable": self.bucket_size,
                                   "currentlyAvailable": 0 if forced else int(self._available),
                                   "restoreRate": self.restore_rate}}

    # Orders and webhooks (§7.5) ---------------------------------------------------
    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _level(self, item_id: int) -> dict:
        level = self.items[item_id]["levels"].get(self.default_location)
        if level is None:
            raise ValueError(f"inventory item {item_id} is not stocked at the default location")
        return level

    def _move_stock(self, item_id: int, ordered: int) -> None:
        """``ordered`` more units were sold (negative: given back)."""
        if self.items[item_id].get("tracked", True):
            level = self._level(item_id)
            level["available"] -= ordered
            level["committed"] = level.get("committed", 0) + ordered

    def _item_of(self, identifier) -> int:
        text = str(identifier).rpartition("/")[2]
        if not text.isdigit() or int(text) not in self.items:
            raise KeyError(f"no inventory item {identifier!r}")
        return int(text)

    def place_order(self, lines: list[tuple[str, int]], *, status: str | None = None) -> str:
        """A customer's order of ``(inventory item id, quantity)`` lines; returns the order id.

        ``status`` is the ``displayFulfillmentStatus`` (default ``UNFULFILLED``)."""
        with self.lock:
            planned = [(self._item_of(ident), int(qty)) for ident, qty in lines]
            if not planned or any(qty <= 0 for _item, qty in planned):
                raise ValueError("an order needs lines with positive quantities")
            for item_id, _qty in planned:
                if self.items[item_id].get("tracked", True):
                    self._level(item_id)
            now = self._now()
            order_id = self._next_order
            self._next_order += 1
            order = {"id": order_id, "name": f"#{order_id - 5000000000 + 1000}", "created_at": now,
                     "updated_at": now, "cancelled_at": None, "status": status or "UNFULFILLED",
                     "lines": []}
            for item_id, qty in planned:
                order["lines"].append(self._new_line(item_id, qty))
                self._move_stock(item_id, qty)
            self.orders[order_id] = order
            self._notify("orders/create", order)
            return str(order_id)

    def _new_line(self, item_id: int, quantity: int) -> dict:
        variant_id = self.items[item_id]["variant"]
        variant = self.variants[variant_id]
        line = {"id": self._next_line, "item": item_id, "variant": variant_id,
                "product": variant["product"], "sku": variant["sku"] or None,
                "title": self.products[variant["product"]]["title"], "variant_title": variant["title"],
                "price": variant.get("price", 0), "quantity": quantity, "current": quantity}
        self._next_line += 1
        return line

    def edit_order(self, order_id, lines: list[tuple[str, int]]) -> None:
        """An order edit: each listed item's current quantity becomes the given one (0 removes
        it, an item not on the order is added); stock moves by the difference."""
        with self.lock:
            order = self.orders[int(order_id)]
            if order["cancelled_at"] is not None:
                raise ValueError("a cancelled order cannot be edited")
            planned = [(self._item_of(ident), int(qty)) for ident, qty in lines]
            if any(qty < 0 for _item, qty in planned):
                raise ValueError("quantities cannot be negative")
            for item_id, _qty in planned:  # check everything before changing anything
                if self.items[item_id].get("tracked", True):
                    self._level(item_id)
            for item_id, qty in planned:
                line = next((ln for ln in order["lines"] if ln["item"] == item_id), None)
                if line is None:
                    if qty:
                        order["lines"].append(self._new_line(item_id, qty))
                        self._move_stock(item_id, qty)
                    continue
                self._move_stock(item_id, qty - line["current"])
                line["current"] = qty
                line["quantity"] = max(line["quantity"], qty)
            order["updated_at"] = self._now()
            self._notify("orders/updated", order)

    def cancel_order(self, order_id) -> None:
        """Cancel with restock: ``cancelledAt`` set, every line's units back in stock."""
        with self.lock:
            order = self.orders[int(order_id)]
            if order["cancelled_at"] is not None:
                return
            for line in order["lines"]:
                self._move_stock(line["item"], -line["current"])
                line["current"] = 0
            order["cancelled_at"] = order["updated_at"] = self._now()
            self._notify("orders/cancelled", order)

    def recent_orders(self, limit: int = 20) -> list[dict]:
        """The newest orders first, summed up for the control page: ``order_id``, ``placed``,
        ``updated`` (JST text), ``status``, ``cancelled`` and ``lines`` ``[(inventory item id, quantity)]``."""
        jst = timezone(timedelta(hours=9))
        with self.lock:
            orders = sorted(self.orders.values(), key=lambda o: o["id"], reverse=True)[:limit]
            return [{"order_id": str(o["id"]),
                     "placed": o["created_at"].astimezone(jst).strftime("%Y-%m-%d %H:%M:%S"),
                     "updated": o["updated_at"].astimezone(jst).strftime("%Y-%m-%d %H:%M:%S"),
                     "status": o["status"], "cancelled": o["cancelled_at"] is not None,
                     "lines": [(str(line["item"]), line["current"]) for line in o["lines"]]}
                    for o in orders]

    def set_order_status(self, order_id, status: str) -> None:
        """The merchant fulfilled (part of) the order: a new ``displayFulfillmentStatus``."""
        with self.lock:
            order = self.orders[int(order_id)]
            order["status"] = status
            order["updated_at"] = self._now()
            self._notify("orders/updated", order)

    def subscribe(self, topic: str, url: str) -> str:
        """Deliver ``topic`` (``orders/create``…) to ``url``; returns the subscription's gid."""
        if topic not in WEBHOOK_TOPICS.values():
            raise ValueError(f"unknown webhook topic {topic!r}")
        with self.lock:
            webhook_id = gid("WebhookSubscription", self._next_webhook)
            self._next_webhook += 1
            self.webhooks.append({"id": webhook_id, "topic": topic, "url": url})
            return webhook_id

    @property
    def webhook_log(self) -> list[dict]:
        return list(self.webhook_sender.log)

    def _notify(self, topic: str, order: dict) -> None:
        body = json.dumps(order_payload(order, self.shop_name), ensure_ascii=False).encode()
        for hook in self.webhooks:
            if hook["topic"] == topic:
                self.webhook_sender.send(topic, hook["url"], body)

    def webhook_create(self, args: dict) -> dict:
        """``webhookSubscriptionCreate(topic, webhookSubscription: {uri | callbackUrl})``."""
        topic = WEBHOOK_TOPICS.get(str(args.get("topic")))
        spec = args.get("webhookSubscription") or {}
        uri = spec.get("uri") or spec.get("callbackUrl")
        if topic is None:
            return {"webhookSubscription": None,
                    "userErrors": [{"field": ["topic"], "message": "Topic is not supported"}]}
        if not isinstance(uri, str) or not re.match(r"https?://", uri):
            return {"webhookSubscription": None,
                    "userErrors": [{"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}]}
        webhook_id = self.subscribe(topic, uri)
        return {"webhookSubscription": {"id": webhook_id, "topic": str(args["topic"]), "uri": uri,
                                        "format": "JSON"}, "userErrors": []}

    def order_obj(self, order_id: int) -> dict | None:
        order = self.orders.get(order_id)
        if order is None:
            return None
        return {"__typename": "Order", "id": gid("Order", order_id), "name": order["name"],
                "createdAt": _iso(order["created_at"]), "updatedAt": _iso(order["updated_at"]),
                "cancelledAt": _iso(order["cancelled_at"]) if order["cancelled_at"] else None,
                "displayFulfillmentStatus": order["status"], "_num": order_id}

    def line_page(self, order: dict, args: dict) -> dict:
        """``Order.lineItems(first, after)`` in line order."""
        lines = self.orders[order["_num"]]["lines"]
        return _page(args, "LineItem", lines, lambda ln: (ln["id"], ln["id"]), _line_obj)

    def order_page(self, args: dict) -> dict:
        """``orders(first, after, query, sortKey, reverse)``: the filter is ``updated_at``."""
        key = ORDER_SORT_KEYS.get(str(args.get("sortKey") or "ID"))
        if key is None:
            raise GraphQLError(f"Invalid sort key {args.get('sortKey')}", extensions={"code": "BAD_REQUEST"})

        def position(o: dict) -> tuple[int, int]:
            return (o["id"] if key == "id" else int(o[key].timestamp()), o["id"])

        reverse = bool(args.get("reverse"))
        orders = sorted((o for o in self.orders.values() if _matches(o, args.get("query"))),
                        key=position, reverse=reverse)
        return _page(args, "Order", orders, position, lambda o: self.order_obj(o["id"]), reverse=reverse)

    # Objects as the resolvers hand them out -------------------------------------
    def item_obj(self, item_id: int) -> dict | None:
        item = self.items.get(item_id)
        if item is None:
            return None
        return {"__typename": "InventoryItem", "id": gid("InventoryItem", item_id),
                "sku": item["sku"], "tracked": item.get("tracked", True), "_num": item_id}

    def variant_obj(self, variant_id: int) -> dict | None:
        variant = self.variants.get(variant_id)
        if variant is None:
            return None
        product = self.products[variant["product"]]
        title = product["title"] if variant["title"] == DEFAULT_TITLE else \
            f"{product['title']} - {variant['title']}"
        media = [{"preview": {"image": {"url": variant["image_url"], "altText": None}}}] \
            if variant["image_url"] else []
        return {"__typename": "ProductVariant", "id": gid("ProductVariant", variant_id),
                "title": variant["title"], "sku": variant["sku"] or None, "displayName": title,
                "_media": media, "_num": variant_id, "_item": variant["item"], "_product": variant["product"]}

    def product_obj(self, product_id: int) -> dict | None:
        product = self.products.get(product_id)
        if product is None:
            return None
        media = None
        if product["image_url"]:
            media = {"preview": {"image": {"url": product["image_url"], "altText": None}}}
        return {"__typename": "Product", "id": gid("Product", product_id), "title": product["title"],
                "featuredMedia": media}

    def variant_page(self, args: dict) -> dict:
        """``productVariants(first, after)``: variants in id order after the cursor (shopify.dev
        pagination); the cursor is opaque to clients."""
        first = args.get("first")
        if not isinstance(first, int) or not 0 < first <= MAX_PAGE:
            raise GraphQLError(f"The 'first' argument must be between 1 and {MAX_PAGE}.",
                               extensions={"code": "BAD_REQUEST"})
        after = args.get("after")
        start = 0
        ordered = sorted(self.variants)
        if after:
            try:
                last = int(base64.b64decode(str(after)).decode().rpartition("/")[2])
            except (ValueError, UnicodeDecodeError):
                raise GraphQLError("Invalid cursor for current pagination sort.",
                                   extensions={"code": "BAD_REQUEST"}) from None
            start = next((i for i, v in enumerate(ordered) if v > last), len(ordered))
        chunk = ordered[start:start + first]
        edges = [{"cursor": base64.b64encode(f"ProductVariant/{v}".encode()).decode(),
                  "node": self.variant_obj(v)} for v in chunk]
        return {"edges": edges, "nodes": [e["node"] for e in edges],
                "pageInfo": {"hasNextPage": start + first < len(ordered), "hasPreviousPage": start > 0,
                             "startCursor": edges[0]["cursor"] if edges else None,
                             "endCursor": edges[-1]["cursor"] if edges else None}}

    def location_obj(self, location_id: int) -> dict | None:
        if location_id not in self.locations:
            return None
        return {"__typename": "Location", "id": gid("Location", location_id),
                "name": self.locations[location_id], "isActive": True}

    def set_quantities(self, args: dict, directives: dict) -> dict:
        """``inventorySetQuantities`` (§7.3, §7.4); the caller holds the lock."""
        key = (directives.get("idempotent") or {}).get("key")
        if not key:
            raise GraphQLError("The @idempotent directive is required for this mutation",
                               extensions={"code": "BAD_REQUEST"})
        fingerprint = json.dumps(args, sort_keys=True, default=str)
        if key in self.idempotency:
            seen, payload = self.idempotency[key]
            if seen == fingerprint:
                return copy.deepcopy(payload)
            return _payload([_user_error("IDEMPOTENCY_KEY_PARAMETER_MISMATCH", ["input"],
                                         "The same idempotency key was used with different parameters.")])
        payload = self._apply_set(args.get("input") or {})
        self.idempotency[key] = (fingerprint, copy.deepcopy(payload))
        return payload

    def _apply_set(self, data: dict) -> dict:
        quantities = data.get("quantities") or []
        for i, q in enumerate(quantities):
            if "changeFromQuantity" not in q:
                # 2026-04: the field is mandatory; null opts out of the check (§7.3).
                raise GraphQLError(
                    "Variable $input of type InventorySetQuantitiesInput! was provided invalid value "
                    f"for quantities.{i}.changeFromQuantity (Expected value to not be null)",
                    extensions={"code": "INVALID_VARIABLE"})
        errors = []
        if data.get("name") not in SET_NAMES:
            errors.append(_user_error("INVALID_NAME", ["input", "name"], "The quantity name is invalid."))
        if data.get("reason") not in REASONS:
            errors.append(_user_error("INVALID_REASON", ["input", "reason"], "The reason is invalid."))
        uri = data.get("referenceDocumentUri")
        if uri is not None and "://" not in str(uri):
            errors.append(_user_error("INVALID_REFERENCE_DOCUMENT", ["input", "referenceDocumentUri"],
                                      "The reference document URI is invalid."))
        name = data.get("name")
        pairs, plan = set(), []
        for i, q in enumerate(quantities):
            path = ["input", "quantities", str(i)]
            checked = self._check_quantity(q, name, path, pairs)
            if isinstance(checked, dict):
                errors.append(checked)
            else:
                plan.append((q["quantity"], *checked))
        if errors:
            return _payload(errors)  # all or nothing: nothing was applied
        return _payload([], self._apply(plan, name, data))

    def _check_quantity(self, q: dict, name, path: list, pairs: set) -> dict | tuple[int, int]:
        """A user error, or ``(item_id, location_id)`` when the quantity may be applied."""
        try:
            item_id = parse_gid(q.get("inventoryItemId"), "InventoryItem")
        except GraphQLError:
            item_id = None
        if item_id not in self.items:
            return _user_error("INVALID_INVENTORY_ITEM", path + ["inventoryItemId"],
                               "The specified inventory item could not be found.")
        try:
            location_id = parse_gid(q.get("locationId"), "Location")
        except GraphQLError:
            location_id = None
        if location_id not in self.locations:
            return _user_error("INVALID_LOCATION", path + ["locationId"],
                               "The specified location could not be found.")
        if (item_id, location_id) in pairs:
            return _user_error("NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR", path,
                               "The combination of inventoryItemId and locationId must be unique.")
        pairs.add((item_id, location_id))
        level = self.items[item_id]["levels"].get(location_id)
        if level is None:
            return _user_error("ITEM_NOT_STOCKED_AT_LOCATION", path + ["inventoryItemId"],
                               "The specified inventory item is not stocked at the location.")
        quantity = q.get("quantity")
        if not isinstance(quantity, int) or quantity < 0:
            return _user_error("INVALID_QUANTITY_NEGATIVE", path + ["quantity"],
                               "The quantity can't be negative.")
        if quantity > MAX_QUANTITY:
            return _user_error("INVALID_QUANTITY_TOO_HIGH", path + ["quantity"],
                               "The quantity can't be higher than 1,000,000,000.")
        expected = q.get("changeFromQuantity")
        if expected is not None and name in level and expected != level[name]:
            return _user_error("CHANGE_FROM_QUANTITY_STALE", path + ["changeFromQuantity"],
                               "The specified compare quantity is stale.")
        return item_id, location_id

    def _apply(self, plan: list[tuple[int, int, int]], name: str, data: dict) -> dict:
        changes = []
        for quantity, item_id, location_id in plan:
            level = self.items[item_id]["levels"][location_id]
            delta = quantity - level[name]
            other = "on_hand" if name == "available" else "available"
            level[name] += delta
            level[other] += delta
            for changed in (name, other):
                changes.append({"name": changed, "delta": delta, "quantityAfterChange": level[changed],
                                "item": self.item_obj(item_id),
                                "location": self.location_obj(location_id)})
        group = {"id": gid("InventoryAdjustmentGroup", self._next_group), "reason": data.get("reason"),
                 "referenceDocumentUri": data.get("referenceDocumentUri"),
                 "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "changes": changes}
        self._next_group += 1
        self.adjustments.append(copy.deepcopy(group))
        return group


def order_payload(order: dict, shop_name: str) -> dict:
    """The order as a REST-style webhook body (times in the shop's zone, money as strings)."""
    def local(moment):
        return moment.astimezone(SHOP_TZ).isoformat() if moment else None

    fulfilled = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial", "RESTOCKED": "restocked"}
    return {
        "id": order["id"], "admin_graphql_api_id": gid("Order", order["id"]), "name": order["name"],
        "order_number": int(order["name"].lstrip("#")), "currency": "JPY",
        "created_at": local(order["created_at"]), "updated_at": local(order["updated_at"]),
        "cancelled_at": local(order["cancelled_at"]),
        "cancel_reason": "customer" if order["cancelled_at"] else None,
        "fulfillment_status": fulfilled.get(order["status"]),
        "order_status_url": f"https://{shop_name}.myshopify.com/orders/{order['id']}",
        "line_items": [{
            "id": ln["id"], "admin_graphql_api_id": gid("LineItem", ln["id"]),
            "variant_id": ln["variant"], "product_id": ln["product"], "sku": ln["sku"] or "",
            "title": ln["title"], "variant_title": None if ln["variant_title"] == DEFAULT_TITLE
            else ln["variant_title"], "name": ln["title"], "quantity": ln["quantity"],
            "current_quantity": ln["current"], "fulfillable_quantity": ln["current"],
            "price": f"{ln['price']}.00", "price_set": {"shop_money": {"amount": f"{ln['price']}.00",
                                                                      "currency_code": "JPY"}},
        } for ln in order["lines"]],
    }


def _line_obj(line: dict) -> dict:
    return {"__typename": "LineItem", "id": gid("LineItem", line["id"]), "sku": line["sku"],
            "title": line["title"], "name": line["title"], "quantity": line["quantity"],
            "currentQuantity": line["current"], "_variant": line["variant"],
            "originalUnitPriceSet": {"shopMoney": {"amount": f"{line['price']}.0", "currencyCode": "JPY"}}}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _matches(order: dict, query) -> bool:
    """Whether ``order`` matches the search ``query`` (only ``updated_at`` comparisons count)."""
    for op, text in _UPDATED_FILTER.findall(str(query or "")):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        value = order["updated_at"]
        if not {">=": value >= moment, ">": value > moment, "<=": value <= moment,
                "<": value < moment}[op]:
            return False
    return True


def _page(args: dict, kind: str, rows: list, position, obj, *, reverse: bool = False) -> dict:
    """A connection page of ``rows`` (already in order) after the ``after`` cursor; the cursor
    (opaque to clients) holds the last row's ``position``."""
    first = args.get("first")
    if not isinstance(first, int) or not 0 < first <= MAX_PAGE:
        raise GraphQLError(f"The 'first' argument must be between 1 and {MAX_PAGE}.",
                           extensions={"code": "BAD_REQUEST"})
    start = 0
    if args.get("after"):
        try:
            named, value, number = base64.b64decode(str(args["after"])).decode().split("/")
            last = (int(value), int(number))
        except (ValueError, UnicodeDecodeError):
            named, last = None, None
        if named != kind:
            raise GraphQLError("Invalid cursor for current pagination sort.",
                               extensions={"code": "BAD_REQUEST"})
        start = next((i for i, row in enumerate(rows)
                      if (position(row) < last if reverse else position(row) > last)), len(rows))
    chunk = rows[start:start + first]
    edges = [{"cursor": base64.b64encode("{}/{}/{}".format(kind, *position(row)).encode()).decode(),
              "node": obj(row)} for row in chunk]
    return {"edges": edges, "nodes": [e["node"] for e in edges],
            "pageInfo": {"hasNextPage": start + first < len(rows), "hasPreviousPage": start > 0,
                         "startCursor": edges[0]["cursor"] if edges else None,
                         "endCursor": edges[-1]["cursor"] if edges else None}}


def _user_error(code: str, field: list, message: str) -> dict:
    return {"code": code, "field": field, "message": message}


def _payload(errors: list, group: dict | None = None) -> dict:
    return {"inventoryAdjustmentGroup": group, "userErrors": errors}


def _schema() -> Schema:
    def inventory_item(_parent, args, sb, _d):
        return sb.item_obj(parse_gid(args["id"], "InventoryItem"))

    def location(_parent, args, sb, _d):
        return sb.location_obj(parse_gid(args["id"], "Location"))

    def node(_parent, args, sb, _d):
        match = re.fullmatch(r"gid://shopify/(InventoryItem|Location|Order)/(\d+)", str(args.get("id")))
        if not match:
            return None
        kind, number = match.group(1), int(match.group(2))
        return {"InventoryItem": sb.item_obj, "Location": sb.location_obj, "Order": sb.order_obj}[kind](number)

    def variants_count(_parent, args, sb, _d):
        limit = args.get("limit", COUNT_LIMIT)
        total = len(sb.variants)
        if limit is not None and total > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": total, "precision": "EXACT"}

    def nodes(_parent, args, sb, _d):
        return [node(None, {"id": i}, sb, _d) for i in args["ids"] or []]

    def inventory_level(item, args, sb, _d):
        location_id = parse_gid(args["locationId"], "Location")
        if item["_num"] not in sb.items or location_id not in sb.items[item["_num"]]["levels"]:
            return None
        return {"id": f"gid://shopify/InventoryLevel/{item['_num']}?inventory_item_id={item['_num']}",
                "_item": item["_num"], "_location": location_id}

    def quantities(level, args, sb, _d):
        names = args["names"] or []
        bad = [n for n in names if n not in QUANTITY_NAMES]
        if bad:
            raise GraphQLError(f"Invalid quantity name: {bad[0]}", extensions={"code": "BAD_REQUEST"})
        values = sb.items[level["_item"]]["levels"][level["_location"]]
        return [{"name": n, "quantity": values.get(n, 0)} for n in names]

    types = {
        "QueryRoot": {
            "shop": FieldDef("Shop", resolve=lambda p, a, sb, d: {
                "id": "gid://shopify/Shop/1", "name": sb.shop_name,
                "myshopifyDomain": f"{sb.shop_name}.myshopify.com"}),
            "location": FieldDef("Location", required=("id",), resolve=location),
            "inventoryItem": FieldDef("InventoryItem", required=("id",), resolve=inventory_item),
            "node": FieldDef("Node", required=("id",), resolve=node),
            "nodes": FieldDef("Node", required=("ids",), resolve=nodes),
            "productVariants": FieldDef("ProductVariantConnection", connection=True,
                                        optional=("first", "after"),
                                        resolve=lambda p, a, sb, d: sb.variant_page(a)),
            "productVariantsCount": FieldDef("Count", optional=("limit",), resolve=variants_count),
            "orders": FieldDef("OrderConnection", connection=True,
                               optional=("first", "after", "query", "sortKey", "reverse"),
                               resolve=lambda p, a, sb, d: sb.order_page(a)),
            "order": FieldDef("Order", required=("id",),
                              resolve=lambda p, a, sb, d: sb.order_obj(parse_gid(a["id"], "Order"))),
        },
        "OrderConnection": {"edges": FieldDef("OrderEdge"), "nodes": FieldDef("Order"),
                            "pageInfo": FieldDef("PageInfo")},
        "OrderEdge": {"cursor": FieldDef(), "node": FieldDef("Order")},
        "Order": {
            "id": FieldDef(), "name": FieldDef(), "createdAt": FieldDef(), "updatedAt": FieldDef(),
            "cancelledAt": FieldDef(), "displayFulfillmentStatus": FieldDef(),
            "lineItems": FieldDef("LineItemConnection", connection=True, optional=("first", "after"),
                                  resolve=lambda o, a, sb, d: sb.line_page(o, a)),
        },
        "LineItemConnection": {"edges": FieldDef("LineItemEdge"), "nodes": FieldDef("LineItem"),
                               "pageInfo": FieldDef("PageInfo")},
        "LineItemEdge": {"cursor": FieldDef(), "node": FieldDef("LineItem")},
        "LineItem": {
            "id": FieldDef(), "sku": FieldDef(), "title": FieldDef(), "name": FieldDef(),
            "quantity": FieldDef(), "currentQuantity": FieldDef(),
            "originalUnitPriceSet": FieldDef("MoneyBag"),
            "variant": FieldDef("ProductVariant", resolve=lambda ln, a, sb, d: sb.variant_obj(ln["_variant"])),
        },
        "MoneyBag": {"shopMoney": FieldDef("MoneyV2"), "presentmentMoney": FieldDef("MoneyV2")},
        "MoneyV2": {"amount": FieldDef(), "currencyCode": FieldDef()},
        "WebhookSubscriptionCreatePayload": {"webhookSubscription": FieldDef("WebhookSubscription"),
                                             "userErrors": FieldDef("UserError")},
        "WebhookSubscription": {"id": FieldDef(), "topic": FieldDef(), "uri": FieldDef(), "format": FieldDef()},
        "UserError": {"field": FieldDef(), "message": FieldDef()},
        "Count": {"count": FieldDef(), "precision": FieldDef()},
        "ProductVariantConnection": {
            "edges": FieldDef("ProductVariantEdge"), "nodes": FieldDef("ProductVariant"),
            "pageInfo": FieldDef("PageInfo"),
        },
        "ProductVariantEdge": {"cursor": FieldDef(), "node": FieldDef("ProductVariant")},
        "PageInfo": {"hasNextPage": FieldDef(), "hasPreviousPage": FieldDef(), "startCursor": FieldDef(),
                     "endCursor": FieldDef()},
        "ProductVariant": {
            "id": FieldDef(), "title": FieldDef(), "sku": FieldDef(), "displayName": FieldDef(),
            "media": FieldDef("MediaConnection", connection=True, optional=("first",),
                              resolve=lambda v, a, sb, d: {"nodes": v["_media"][:a.get("first") or 0]}),
            "product": FieldDef("Product", resolve=lambda v, a, sb, d: sb.product_obj(v["_product"])),
            "inventoryItem": FieldDef("InventoryItem", resolve=lambda v, a, sb, d: sb.item_obj(v["_item"])),
        },
        "Product": {"id": FieldDef(), "title": FieldDef(), "featuredMedia": FieldDef("Media")},
        "MediaConnection": {"nodes": FieldDef("Media")},
        "Media": {"preview": FieldDef("MediaPreview")},
        "MediaPreview": {"image": FieldDef("Image")},
        "Image": {"url": FieldDef(), "altText": FieldDef()},
        "Mutation": {
            "inventorySetQuantities": FieldDef(
                "InventorySetQuantitiesPayload", required=("input",),
                resolve=lambda p, a, sb, d: sb.set_quantities(a, d)),
            "webhookSubscriptionCreate": FieldDef(
                "WebhookSubscriptionCreatePayload", required=("topic", "webhookSubscription"),
                resolve=lambda p, a, sb, d: sb.webhook_create(a)),
        },
        "Node": {"id": FieldDef()},
        "Shop": {"id": FieldDef(), "name": FieldDef(), "myshopifyDomain": FieldDef()},
        "Location": {"id": FieldDef(), "name": FieldDef(), "isActive": FieldDef()},
        "InventoryItem": {
            "id": FieldDef(), "sku": FieldDef(), "tracked": FieldDef(),
            "variant": FieldDef("ProductVariant", resolve=lambda it, a, sb, d: sb.variant_obj(
                sb.items[it["_num"]]["variant"])),
            "inventoryLevel": FieldDef("InventoryLevel", required=("locationId",), resolve=inventory_level),
        },
        "InventoryLevel": {
            "id": FieldDef(),
            "quantities": FieldDef("InventoryQuantity", required=("names",), resolve=quantities),
            "item": FieldDef("InventoryItem", resolve=lambda lv, a, sb, d: sb.item_obj(lv["_item"])),
            "location": FieldDef("Location", resolve=lambda lv, a, sb, d: sb.location_obj(lv["_location"])),
        },
        "InventoryQuantity": {"name": FieldDef(), "quantity": FieldDef()},
        "InventorySetQuantitiesPayload": {
            "inventoryAdjustmentGroup": FieldDef("InventoryAdjustmentGroup"),
            "userErrors": FieldDef("InventorySetQuantitiesUserError"),
        },
        "InventoryAdjustmentGroup": {
            "id": FieldDef(), "reason": FieldDef(), "referenceDocumentUri": FieldDef(),
            "createdAt": FieldDef(),
            "changes": FieldDef("InventoryChange", optional=("inventoryItemIds", "locationIds",
                                                             "quantityNames")),
        },
        "InventoryChange": {
            "name": FieldDef(), "delta": FieldDef(), "quantityAfterChange": FieldDef(),
            "item": FieldDef("InventoryItem"), "location": FieldDef("Location"),
        },
        "InventorySetQuantitiesUserError": {"code": FieldDef(), "field": FieldDef(), "message": FieldDef()},
    }
    return Schema(types, interfaces={"Node": {"InventoryItem", "Location", "Order"}},
                  directives={"idempotent": ("key",)})


SCHEMA = _schema()


def create_app(sandbox: ShopifySandbox) -> Flask:
    """The Flask app serving ``sandbox`` at Shopify's GraphQL Admin path."""
    app = Flask(__name__)

    def fault(status, maintenance):
        response = jsonify(errors="Service Unavailable" if maintenance else "Internal Server Error")
        if maintenance:
            response.headers["Retry-After"] = "60"
        return response, 503 if maintenance else status

    install(app, sandbox, fault)

    @app.post("/admin/api/<version>/graphql.json")
    def graphql(version: str):
        if not re.fullmatch(r"\d{4}-(01|04|07|10)|unstable", version):
            return jsonify(errors="Not Found"), 404
        with sandbox.lock:
            authorized = request.headers.get("X-Shopify-Access-Token") in sandbox.tokens
        if not authorized:
            return jsonify(errors=UNAUTHORIZED), 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return jsonify(errors={"query": "Required parameter missing or invalid"}), 400
        try:
            prepared = prepare(SCHEMA, body["query"], body.get("variables"), body.get("operationName"))
        except ValidationFailed as exc:
            return jsonify(errors=[e.as_dict() for e in exc.errors])
        allowed, cost = sandbox.spend(prepared.cost)
        if not allowed:
            # §7.6: throttled answers carry no data, only the error and the cost block.
            return jsonify(errors=[{"message": "Throttled", "extensions": {
                "code": "THROTTLED",
                "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                extensions={"cost": cost})
        with sandbox.lock:  # one request at a time: mutations are atomic
            result = execute(prepared, sandbox)
        result["extensions"] = {"cost": cost}
        return jsonify(result)

    _controls(app, sandbox)
    return app


def _controls(app: Flask, sandbox: ShopifySandbox) -> None:
    def body() -> dict:
        return request.get_json(silent=True) or {}

    @app.post("/sandbox/locations")
    def _add_location():
        return jsonify(id=sandbox.add_location(body().get("name", "倉庫"))), 201

    @app.post("/sandbox/items")
    def _add_item():
        b = body()
        item_id = sandbox.add_item(b.get("sku", ""), int(b.get("available", 0)), b.get("location_id"),
                                   stocked=b.get("stocked", True), tracked=b.get("tracked", True))
        return jsonify(id=item_id, gid=gid("InventoryItem", item_id)), 201

    @app.post("/sandbox/products")
    def _add_product():
        b = body()
        items = sandbox.add_product(b.get("title", "商品"), b.get("variants") or [{}], image_url=b.get("image_url"))
        return jsonify(inventory_item_ids=items), 201

    @app.get("/sandbox/items/<int:item_id>")
    def _show_item(item_id: int):
        available = sandbox.stock(item_id, request.args.get("location_id", type=int))
        if available is None:
            return jsonify(error="not found"), 404
        return jsonify(id=item_id, available=available)

    @app.post("/sandbox/items/<int:item_id>/stock")
    def _set_stock(item_id: int):
        b = body()
        try:
            sandbox.set_stock(item_id, int(b["available"]), b.get("location_id"))
        except KeyError:
            return jsonify(error="not found"), 404
        return jsonify(id=item_id, available=sandbox.stock(item_id, b.get("location_id")))

    @app.post("/sandbox/tokens")
    def _issue_token():
        return jsonify(access_token=sandbox.issue_token()), 201

    @app.post("/sandbox/tokens/revoke")
    def _revoke_token():
        sandbox.revoke_token(body().get("access_token", ""))
        return jsonify(ok=True)

    @app.post("/sandbox/throttle")
    def _throttle():
        sandbox.throttle_next(int(body().get("count", 1)))
        return jsonify(ok=True)

    @app.get("/sandbox/adjustments")
    def _adjustments():
        with sandbox.lock:
            return jsonify(adjustments=copy.deepcopy(sandbox.adjustments))

    @app.post("/sandbox/orders")
    def _place_order():
        b = body()
        try:
            order_id = sandbox.place_order([(str(i), int(q)) for i, q in b.get("lines") or []],
                                           status=b.get("status"))
        except (KeyError, ValueError, TypeError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(id=order_id), 201

    @app.post("/sandbox/orders/<int:order_id>/edit")
    def _edit_order(order_id: int):
        try:
            sandbox.edit_order(order_id, [(str(i), int(q)) for i, q in body().get("lines") or []])
        except (KeyError, ValueError, TypeError) as exc:
            return jsonify(error=str(exc)), 400
        return jsonify(ok=True)

    @app.post("/sandbox/orders/<int:order_id>/cancel")
    def _cancel_order(order_id: int):
        if order_id not in sandbox.orders:
            return jsonify(error="not found"), 404
        sandbox.cancel_order(order_id)
        return jsonify(ok=True)

    @app.post("/sandbox/webhooks")
    def _subscribe():
        b = body()
        try:
            return jsonify(id=sandbox.subscribe(str(b.get("topic")), str(b.get("url")))), 201
        except ValueError as exc:
            return jsonify(error=str(exc)), 400

    @app.get("/sandbox/webhooks")
    def _webhook_log():
        return jsonify(subscriptions=list(sandbox.webhooks), deliveries=sandbox.webhook_log,
                       client_secret=sandbox.client_secret)
