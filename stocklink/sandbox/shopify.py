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

Orders (§7.5) are not simulated yet; ``self.orders`` is where they go.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from datetime import UTC, datetime

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
        self.orders: list[dict] = []
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
        ``tracked``, ``location_id``, ``image_url``) and return their inventory item ids, in order."""
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
                                             "image_url": v.get("image_url")}
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
        match = re.fullmatch(r"gid://shopify/(InventoryItem|Location)/(\d+)", str(args.get("id")))
        if not match:
            return None
        kind, number = match.group(1), int(match.group(2))
        return sb.item_obj(number) if kind == "InventoryItem" else sb.location_obj(number)

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
        },
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
    return Schema(types, interfaces={"Node": {"InventoryItem", "Location"}},
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
