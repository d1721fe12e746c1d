"""What every sandbox order book shares: its refusal, its lines and its JSON controls.

A simulator that keeps orders (ColorMe's sales, NextEngine's 受注伝票, …) has the same methods
(``place_order(lines, status=None)`` → order id, ``edit_order(order_id, lines)``,
``set_order_status(order_id, status)``, ``cancel_order(order_id)``, ``recent_orders(limit)``),
with ``lines`` as ``(identifier, quantity)`` — the identifier stocklink writes the listing's stock
by. :func:`install_order_controls` mirrors them under ``/sandbox/orders`` (JSON in, JSON out):

- ``POST /sandbox/orders`` ``{"lines": [["A-001", 2]], "status": …}`` → ``201 {"order_id"}``
- ``POST /sandbox/orders/<id>`` ``{"lines": …, "status": …}`` (either or both)
- ``POST /sandbox/orders/<id>/cancel``
- ``GET /sandbox/orders?limit=20`` — the newest first

A refused change answers ``422 {"error"}`` and changes nothing.
"""
from __future__ import annotations

from flask import Flask, jsonify, request


class OrderRefused(ValueError):
    """An order change the platform would not make (an unknown item or order, a bad quantity,
    too little stock where the platform refuses to oversell); the message says which."""


def merged_lines(lines, *, minimum: int) -> dict[str, int]:
    """``(identifier, quantity)`` lines as identifier → quantity, repeated identifiers summed.

    :raise OrderRefused: no line, or a quantity that is not a whole number ≥ ``minimum``."""
    merged: dict[str, int] = {}
    for identifier, quantity in lines:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < minimum:
            raise OrderRefused(f"{identifier}: quantity must be a whole number {minimum} or more")
        key = str(identifier).strip()
        merged[key] = merged.get(key, 0) + quantity
    if not merged:
        raise OrderRefused("an order needs at least one line")
    return merged


def install_order_controls(app: Flask, book) -> None:
    """Serve ``book``'s order methods under ``/sandbox/orders`` (see the module docstring)."""

    def body() -> dict:
        return request.get_json(silent=True) or {}

    def lines() -> list[tuple[str, int]]:
        return [(str(line[0]), line[1]) for line in body().get("lines") or []]

    def refused(exc: OrderRefused):
        return jsonify(error=str(exc)), 422

    @app.post("/sandbox/orders")
    def _place_order():
        try:
            order_id = book.place_order(lines(), status=body().get("status"))
        except OrderRefused as exc:
            return refused(exc)
        return jsonify(order_id=order_id), 201

    @app.post("/sandbox/orders/<order_id>")
    def _edit_order(order_id: str):
        try:
            if "lines" in body():
                book.edit_order(order_id, lines())
            if "status" in body():
                book.set_order_status(order_id, str(body()["status"]))
        except OrderRefused as exc:
            return refused(exc)
        return jsonify(ok=True)

    @app.post("/sandbox/orders/<order_id>/cancel")
    def _cancel_order(order_id: str):
        try:
            book.cancel_order(order_id)
        except OrderRefused as exc:
            return refused(exc)
        return jsonify(ok=True)

    @app.get("/sandbox/orders")
    def _orders():
        return jsonify(orders=book.recent_orders(request.args.get("limit", 20, type=int)))
