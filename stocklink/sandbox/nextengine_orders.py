"""NextEngine's 受注伝票 (platform-apis-channels.md §2.7) in the NextEngine sandbox.

:class:`ReceiveOrderBook` is the order book :class:`~stocklink.sandbox.nextengine.NextEngineSandbox`
mixes in. Stock moves as NextEngine moves it: an order's rows are allocated (引当数 up, フリー在庫数
down, as far as free stock goes: the rest waits, 引当待ち); 出荷確定 (status ``50``) takes the
shipped quantity off 在庫数 and releases its allocation; a cancel releases the allocation (or,
after shipping, puts the stock back). :meth:`ReceiveOrderBook.order_row` and
:meth:`ReceiveOrderBook.order_rows` are the rows the base and row searches answer, every value a
string (§2.3).
"""
from __future__ import annotations

from stocklink.sandbox.orders import OrderRefused, merged_lines

ORDER_STATUSES = ("1", "2", "20", "50")  # §2.7: the status ids Hamee uses
SHIPPED = "50"  # 出荷確定済
CANCELLED_TYPE = "1"  # receive_order_cancel_type_id: 0 = 有効, anything else a cancel
SHOP_ID = "1"
UNIT_PRICE = 1000  # the sandbox's goods have no price of their own


class ReceiveOrderBook:
    """受注伝票 of a company that has ``goods``, ``now()`` and ``lock``."""

    orders: dict[str, dict]
    _next_order: int

    def _stamp(self) -> str:
        return self.now().strftime("%Y-%m-%d %H:%M:%S")  # §2.2: YYYY-MM-DD HH:MM:SS, Japan time

    def place_order(self, lines: list[tuple[str, int]], *, status: str | None = None) -> str:
        """An order of ``lines`` (``(商品コード, quantity)``) taken in as a 受注伝票 with status
        ``status`` (default ``1`` 受注メール取込済); its rows are allocated. Returns the 伝票番号.

        :raise OrderRefused: unknown goods, a quantity < 1, a status NextEngine does not use."""
        wanted = merged_lines(lines, minimum=1)
        status = _status(status or "1")
        with self.lock:
            self._known(wanted)
            now = self._stamp()
            order_id = str(self._next_order)
            self._next_order += 1
            order = {"id": order_id, "date": now, "status": "1", "cancel": "0", "modified": now, "rows": []}
            for code, quantity in wanted.items():
                self._add_row(order, code, quantity, now)
            self.orders[order_id] = order
            if status != "1":
                self._set_status(order, status, now)
            return order_id

    def edit_order(self, order_id: str, lines: list[tuple[str, int]]) -> None:
        """The order now holds exactly ``lines``: a row's new quantity (allocation moved by the
        difference), new rows added, a row left out (or given 0) cancelled (its cancel flag 1;
        NextEngine keeps the row). ``receive_order_last_modified_date`` moves.

        :raise OrderRefused: unknown or cancelled or shipped order, unknown goods, no line left."""
        wanted = {c: q for c, q in merged_lines(lines, minimum=0).items() if q > 0}
        if not wanted:
            raise OrderRefused("an order needs at least one line: cancel it instead")
        with self.lock:
            order = self._order(order_id)
            if order["status"] == SHIPPED:
                raise OrderRefused(f"order {order_id} is shipped")
            self._known(wanted)
            now = self._stamp()
            live = {r["goods_id"]: r for r in order["rows"] if r["cancel_flag"] == "0"}
            for code, row in live.items():
                if wanted.get(code) != row["quantity"]:
                    self._release(row)
                    if code in wanted:
                        row["quantity"] = wanted[code]
                        self._allocate(row)
                    else:
                        row["cancel_flag"] = "1"
                    row["modified"] = now
            for code, quantity in wanted.items():
                if code not in live:
                    self._add_row(order, code, quantity, now)
            order["modified"] = now

    def set_order_status(self, order_id: str, status_id: str) -> None:
        """Move the order to ``status_id`` (``1``, ``2``, ``20``, ``50``); at ``50`` 出荷確定 the
        rows' quantities leave 在庫数. :raise OrderRefused: unknown or cancelled order or status."""
        status = _status(str(status_id))
        with self.lock:
            order = self._order(order_id)
            self._set_status(order, status, self._stamp())

    def cancel_order(self, order_id: str) -> None:
        """Cancel the order: ``receive_order_cancel_type_id`` set, every row's cancel flag 1, the
        allocation released (after 出荷確定: the shipped stock put back).

        :raise OrderRefused: unknown or already cancelled order."""
        with self.lock:
            order = self._order(order_id)
            now = self._stamp()
            for row in order["rows"]:
                if row["cancel_flag"] == "0":
                    if order["status"] == SHIPPED:
                        self.goods[row["goods_id"]]["stock"] += row["quantity"]
                        self.goods[row["goods_id"]]["modified"] = now
                    else:
                        self._release(row)
                    row["cancel_flag"] = "1"
                    row["modified"] = now
            order["cancel"] = CANCELLED_TYPE
            order["modified"] = now

    def recent_orders(self, limit: int = 20) -> list[dict]:
        """The newest orders first, summed up for the control page: ``order_id``, ``placed``,
        ``updated``, ``status``, ``cancelled`` and ``lines`` ``[(商品コード, quantity)]`` (0: cancelled row)."""
        with self.lock:
            orders = sorted(self.orders.values(), key=lambda o: int(o["id"]), reverse=True)[:limit]
            return [{"order_id": o["id"], "placed": o["date"], "updated": o["modified"], "status": o["status"],
                     "cancelled": o["cancel"] != "0",
                     "lines": [(r["goods_id"], 0 if r["cancel_flag"] == "1" else r["quantity"]) for r in o["rows"]]}
                    for o in orders]

    def _order(self, order_id) -> dict:
        order = self.orders.get(str(order_id))
        if order is None:
            raise OrderRefused(f"no such order: {order_id}")
        if order["cancel"] != "0":
            raise OrderRefused(f"order {order_id} is cancelled")
        return order

    def _known(self, wanted: dict[str, int]) -> None:
        for code in wanted:
            if code not in self.goods or self.goods[code].get("deleted"):
                raise OrderRefused(f"no such goods: {code}")

    def _add_row(self, order: dict, code: str, quantity: int, now: str) -> None:
        row = {"no": str(len(order["rows"]) + 1), "goods_id": code, "name": self.goods[code]["name"],
               "quantity": quantity, "unit_price": UNIT_PRICE, "cancel_flag": "0", "allocated": 0,
               "modified": now}
        order["rows"].append(row)
        self._allocate(row)

    def _allocate(self, row: dict) -> None:
        goods = self.goods[row["goods_id"]]
        row["allocated"] = max(0, min(row["quantity"], goods["stock"] - goods["allocated"]))
        goods["allocated"] += row["allocated"]

    def _release(self, row: dict) -> None:
        self.goods[row["goods_id"]]["allocated"] -= row["allocated"]
        row["allocated"] = 0

    def _set_status(self, order: dict, status: str, now: str) -> None:
        if status == SHIPPED and order["status"] != SHIPPED:
            for row in order["rows"]:
                if row["cancel_flag"] == "0":
                    goods = self.goods[row["goods_id"]]
                    self._release(row)
                    goods["stock"] = max(0, goods["stock"] - row["quantity"])
                    goods["modified"] = now
        order["status"] = status
        order["modified"] = now

    def order_row(self, order_id: str) -> dict:
        """A ``/api_v1_receiveorder_base/search`` row (§2.7), every value a string."""
        o = self.orders[order_id]
        total = sum(r["unit_price"] * r["quantity"] for r in o["rows"] if r["cancel_flag"] == "0")
        return {"receive_order_id": o["id"], "receive_order_shop_id": SHOP_ID,
                "receive_order_shop_cut_form_id": f"SB-{o['id']}", "receive_order_date": o["date"],
                "receive_order_order_status_id": o["status"], "receive_order_cancel_type_id": o["cancel"],
                "receive_order_total_amount": str(total), "receive_order_last_modified_date": o["modified"]}

    def order_rows(self, order_id: str) -> list[dict]:
        """The ``/api_v1_receiveorder_row/search`` rows of one order (§2.7), with the base fields
        NextEngine lets the row endpoint filter and select on too."""
        o = self.orders[order_id]
        base = self.order_row(order_id)
        return [{**base, "receive_order_row_receive_order_id": o["id"], "receive_order_row_no": r["no"],
                 "receive_order_row_goods_id": r["goods_id"], "receive_order_row_goods_name": r["name"],
                 "receive_order_row_quantity": str(r["quantity"]), "receive_order_row_unit_price": str(r["unit_price"]),
                 "receive_order_row_cancel_flag": r["cancel_flag"],
                 "receive_order_row_stock_allocation_quantity": str(r["allocated"]),
                 "receive_order_row_last_modified_date": r["modified"]} for r in o["rows"]]


def _status(status: str) -> str:
    if status not in ORDER_STATUSES:
        raise OrderRefused(f"unknown status {status!r}: one of {', '.join(ORDER_STATUSES)}")
    return status
