"""ColorMe's sales (受注, platform-apis-channels.md §1.6) in the ColorMe sandbox.

:class:`SalesBook` is the order book :class:`~stocklink.sandbox.colorme.ColorMeSandbox` mixes in:
a sale's ``details[]`` carry the fields of §1.6, its dates are the sandbox clock's unix seconds,
ordering deducts the stock (a shop does not sell what it does not hold: too little managed stock
refuses the order) and a cancel restocks it, as ``PUT /v1/sales/{id}/cancel`` with ``restock``.
:meth:`SalesBook.sales_rows` is what ``GET /v1/sales`` answers for its query.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from stocklink.sandbox.orders import OrderRefused, merged_lines

SALES_DEFAULT_DAYS = 7  # §1.6: no date given → from 00:00 seven days ago
UNIT_PRICE = 1000  # the sandbox's products have no price of their own
ORDER_STATUSES = ("unpaid", "paid", "delivered")  # the paid / delivered flags, as one word
JST = timezone(timedelta(hours=9))


class SalesBook:
    """Sales of a shop that has ``products``, ``_variant()``, ``now()``, ``lock`` and ``account_id``."""

    sales: dict[int, dict]
    _next_sale: int
    _next_detail: int

    def place_order(self, lines: list[tuple[str, int]], *, status: str | None = None) -> str:
        """A customer's order of ``lines`` (``(identifier, quantity)``); returns the sale id.

        The ordered stock is deducted as the shop does; a line the shop could not sell (an
        unknown item, more than its managed stock) refuses the whole order, changing nothing.

        :raise OrderRefused: an unknown identifier, a quantity < 1, too little stock, a bad status."""
        wanted = merged_lines(lines, minimum=1)
        flags = _status_flags(status or "unpaid")
        with self.lock:
            now = self.now()
            sale_id = self._next_sale
            details = [self._new_detail(sale_id, ident, qty) for ident, qty in wanted.items()]
            self._take_stock({ident: qty for ident, qty in wanted.items()})
            self._next_sale += 1
            self.sales[sale_id] = {"id": sale_id, "account_id": self.account_id, "make_date": now,
                                   "update_date": now, **flags, "canceled": False, "details": details,
                                   "sale_deliveries": []}
            self._total(self.sales[sale_id])
            return str(sale_id)

    def edit_order(self, order_id: str | int, lines: list[tuple[str, int]]) -> None:
        """The merchant edits the sale to hold exactly ``lines``: a line's new quantity, new lines
        added, a line left out (or given quantity 0) removed; the stock moves by the difference
        and ``update_date`` moves.

        :raise OrderRefused: unknown sale, a cancelled one, an unknown item, too little stock,
            no line left (cancel the sale instead)."""
        wanted = {ident: qty for ident, qty in merged_lines(lines, minimum=0).items() if qty > 0}
        if not wanted:
            raise OrderRefused("an order needs at least one line: cancel it instead")
        with self.lock:
            sale = self._sale(order_id)
            held = {self._detail_identifier(d): d for d in sale["details"]}
            change = {ident: wanted.get(ident, 0) - (held[ident]["product_num"] if ident in held else 0)
                      for ident in {*held, *wanted}}
            added = [self._new_detail(sale["id"], ident, qty) for ident, qty in wanted.items()
                     if ident not in held]
            self._take_stock(change)
            details = []
            for ident, detail in held.items():
                qty = wanted.get(ident, 0)
                if qty > 0:
                    detail["product_num"] = qty
                    details.append(detail)
            sale["details"] = details + added
            sale["update_date"] = self.now()
            self._total(sale)

    def set_order_status(self, order_id: str | int, status: str) -> None:
        """Set the sale's ``paid`` / ``delivered`` flags to ``status`` (``unpaid``, ``paid`` or
        ``delivered``); ``update_date`` moves. :raise OrderRefused: unknown sale or status."""
        flags = _status_flags(status)
        with self.lock:
            sale = self._sale(order_id, cancelled_ok=True)
            sale.update(flags)
            sale["update_date"] = self.now()

    def cancel_order(self, order_id: str | int) -> None:
        """Cancel the sale as ``PUT /v1/sales/{id}/cancel`` with ``restock`` does (§1.6):
        ``canceled`` true, every ``product_num`` 0, the ordered stock put back.

        :raise OrderRefused: unknown or already cancelled sale."""
        with self.lock:
            sale = self._sale(order_id)
            self._take_stock({self._detail_identifier(d): -d["product_num"] for d in sale["details"]})
            for detail in sale["details"]:
                detail["product_num"] = 0
            sale["canceled"] = True
            sale["update_date"] = self.now()
            self._total(sale)

    def recent_orders(self, limit: int = 20) -> list[dict]:
        """The newest sales first, summed up for the control page: ``order_id``, ``placed``,
        ``updated`` (JST text), ``status``, ``cancelled`` and ``lines`` ``[(identifier, quantity)]``."""
        with self.lock:
            sales = sorted(self.sales.values(), key=lambda s: s["id"], reverse=True)[:limit]
            return [{"order_id": str(s["id"]), "placed": _jst(s["make_date"]), "updated": _jst(s["update_date"]),
                     "status": _status_word(s), "cancelled": s["canceled"],
                     "lines": [(self._detail_identifier(d), d["product_num"]) for d in s["details"]]}
                    for s in sales]

    def _sale(self, order_id, *, cancelled_ok: bool = False) -> dict:
        sale = self.sales.get(int(order_id)) if str(order_id).isdigit() else None
        if sale is None:
            raise OrderRefused(f"no such sale: {order_id}")
        if sale["canceled"] and not cancelled_ok:
            raise OrderRefused(f"sale {order_id} is cancelled")
        return sale

    def _target(self, identifier: str) -> tuple[dict, dict]:
        """``(product, product-or-variant)`` an identifier names. :raise OrderRefused: none."""
        parts = identifier.split(":")
        product = self.products.get(int(parts[0])) if parts[0].isdigit() and len(parts) <= 3 else None
        if product is None:
            raise OrderRefused(f"no such item: {identifier}")
        if len(parts) == 1:
            if product["variants"]:
                raise OrderRefused(f"{identifier} is sold by its options")
            return product, product
        values = [_unescape(p) for p in parts[1:]] + [None]
        variant = self._variant(product, values[0], values[1])
        if variant is None:
            raise OrderRefused(f"no such item: {identifier}")
        return product, variant

    def _detail_identifier(self, detail: dict) -> str:
        parts = [str(detail["product_id"])]
        if detail["option1_value"] is not None or detail["option2_value"] is not None:
            parts.append(_escape(detail["option1_value"] or ""))
            if detail["option2_value"]:
                parts.append(_escape(detail["option2_value"]))
        return ":".join(parts)

    def _new_detail(self, sale_id: int, identifier: str, quantity: int) -> dict:
        product, target = self._target(identifier)
        variant = target if target is not product else None
        title = f"{product['name']}（{variant['title']}）" if variant else product["name"]
        price = int(product.get("price") or UNIT_PRICE)
        detail_id = self._next_detail
        self._next_detail += 1
        return {"id": detail_id, "sale_id": sale_id, "account_id": self.account_id,
                "product_id": product["id"],
                "option1_value": variant["option1_value"] if variant else None,
                "option2_value": variant["option2_value"] if variant else None,
                "product_model_number": (variant and variant["model_number"]) or product["model_number"],
                "product_name": product["name"], "pristine_product_full_name": title,
                "price": price, "product_num": quantity, "subtotal_price": price * quantity}

    def _take_stock(self, change: dict[str, int]) -> None:
        """Deduct ``change`` per identifier (negative: put back), all or nothing; an item whose
        stock is not managed is sold without counting. :raise OrderRefused: too little stock."""
        moves = []
        for identifier, quantity in change.items():
            product, target = self._target(identifier)
            if quantity == 0 or not product["stock_managed"]:
                continue
            if quantity > 0 and target["stocks"] < quantity:
                raise OrderRefused(f"{identifier}: only {target['stocks']} in stock")
            moves.append((product, target, quantity))
        now = self.now()
        for product, target, quantity in moves:
            target["stocks"] -= quantity
            target["update_date"] = product["update_date"] = now

    @staticmethod
    def _total(sale: dict) -> None:
        for detail in sale["details"]:
            detail["subtotal_price"] = detail["price"] * detail["product_num"]
        total = sum(d["subtotal_price"] for d in sale["details"])
        sale["product_total_price"] = sale["total_price"] = total

    def sales_rows(self, args) -> list[dict]:
        """The sales ``GET /v1/sales`` answers for its query ``args`` (§1.6), newest first.

        :raise ValueError: a date that is neither ``YYYY-MM-DD`` nor ``YYYY-MM-DD HH:MM:SS``."""
        bounds = {name: _parse_date(args[name], end=name.endswith("max") or name == "before")
                  for name in ("after", "before", "update_date_min", "update_date_max") if args.get(name)}
        if not bounds:
            today = datetime.fromtimestamp(self.now(), JST).replace(hour=0, minute=0, second=0)
            bounds["after"] = int((today - timedelta(days=SALES_DEFAULT_DAYS)).timestamp())
        checks = {"after": lambda s, v: s["make_date"] >= v, "before": lambda s, v: s["make_date"] <= v,
                  "update_date_min": lambda s, v: s["update_date"] >= v,
                  "update_date_max": lambda s, v: s["update_date"] <= v}
        ids = {int(x) for x in args.get("ids", "").split(",") if x.strip().isdigit()}
        flags = {name: args[name] == "true" for name in ("paid", "delivered", "canceled") if args.get(name)}
        with self.lock:
            rows = []
            for sale in sorted(self.sales.values(), key=lambda s: s["id"], reverse=True):
                if ids and sale["id"] not in ids:
                    continue
                if all(checks[name](sale, value) for name, value in bounds.items()) and \
                        all(sale[name] == value for name, value in flags.items()):
                    rows.append({**sale, "details": [dict(d) for d in sale["details"]]})
            return rows


def _status_flags(status: str) -> dict:
    if status not in ORDER_STATUSES:
        raise OrderRefused(f"unknown status {status!r}: one of {', '.join(ORDER_STATUSES)}")
    return {"paid": status in ("paid", "delivered"), "delivered": status == "delivered"}


def _status_word(sale: dict) -> str:
    return "delivered" if sale["delivered"] else "paid" if sale["paid"] else "unpaid"


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace(":", "%3A")


def _unescape(value: str) -> str:
    return value.replace("%3A", ":").replace("%3a", ":").replace("%25", "%")


def _jst(moment: int) -> str:
    return datetime.fromtimestamp(moment, JST).strftime("%Y-%m-%d %H:%M:%S")


def _parse_date(text: str, *, end: bool) -> int:
    """§1.6 dates, read as Japan time: ``YYYY-MM-DD`` (the whole day: its last second for a
    ``max`` / ``before`` bound) or ``YYYY-MM-DD HH:MM:SS``; unix seconds."""
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text.strip(), fmt).replace(tzinfo=JST)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d" and end:
            moment += timedelta(days=1, seconds=-1)
        return int(moment.timestamp())
    raise ValueError(f"not a date: {text!r}")
