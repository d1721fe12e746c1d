"""The small interfaces a channel client implements, one per capability.

A client implements what its platform offers and nothing more; the jobs ask for a
capability, never for a platform by name. Stock goes one of two ways, as the platform's
declaration says (:attr:`~stocklink.platforms.declaration.Platform.writes`):

- :class:`StockWriter`: each listing's stock is written — ``absolute`` (sending it twice is
  harmless), ``compare_and_set`` (refused as ``stale`` when the channel moved meanwhile) or
  ``relative`` (an increment: sending it twice applies it twice, so an unknown outcome is
  settled by reading back, :mod:`stocklink.services.write_intents`);
- :class:`DeltaWriter`: accumulated increase / decrease counts are uploaded in one batch
  (NextEngine, seed 001).

A write the platform accepts without applying it yet (a NextEngine upload's ``que_id``, an
Amazon feed's ``submissionId``) stays pending until :class:`PendingWrites` says it finished
and a read-back confirms the stock (SPEC §11.9); that is handled once, for every platform,
by :func:`stocklink.services.write_intents.settle_pending`.

:class:`CatalogueLister` and :class:`OrderReader` are what the catalogue import and web
orders will need from each channel.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from stocklink.platforms.base import StockWrite, WriteResult


@runtime_checkable
class StockReader(Protocol):
    def read_stock(self, identifiers: list[str]) -> dict[str, int | None]:
        """The channel's stock per identifier; ``None`` for an unknown item or one whose stock
        the channel does not manage."""


@runtime_checkable
class StockWriter(StockReader, Protocol):
    max_batch: int

    def write_mode(self, write: StockWrite) -> str:
        """``absolute``, ``compare_and_set`` or ``relative``: recorded with the write intent."""

    def write_stock(self, writes: list[StockWrite]) -> list[WriteResult]:
        """Apply up to ``max_batch`` writes; one result per write it answered."""


@runtime_checkable
class PendingWrites(Protocol):
    def pending_status(self, refs: list[str]) -> dict[str, dict]:
        """Per ``ref``: ``status`` (``waiting``, ``processing``, ``processed``, ``error`` or
        ``unknown``) and ``message`` (the platform's text for an error)."""


@runtime_checkable
class SellableReader(Protocol):
    def read_stock_and_sellable(self, identifiers: list[str]) -> tuple[dict[str, int | None], dict[str, int | None]]:
        """``read_stock``'s figures, and what the channel offers for sale now (``None``: not known),
        its own orders taken off as soon as it takes them — where the figure ``read_stock`` reads
        moves only when they ship (NextEngine: フリー在庫数 = 在庫数 − 引当数); one read for both."""


@runtime_checkable
class DeltaWriter(StockReader, PendingWrites, Protocol):
    def upload_deltas(self, rows: list[tuple[str, int]], key: str) -> str:
        """Upload ``(identifier, delta)`` rows; returns the platform's ref for the upload,
        which stays pending (:class:`PendingWrites`) until the platform has processed it."""

    def uploads_since(self, moment: datetime) -> list[dict]:
        """The uploads the platform received since ``moment`` (``{"ref", "status"}`` each,
        oldest first): how an upload whose answer was lost is found again."""


@dataclass(frozen=True)
class ChannelItem:
    """One item (or one variant) of a channel's catalogue, as the channel names it.

    ``identifier`` is exactly what the client's ``read_stock`` / ``write_stock`` take;
    ``code`` is the key the auto-link rule matches (platform-apis-channels.md: ColorMe 型番,
    Shopify variant ``sku``, NextEngine 商品コード), ``None`` when the channel has none;
    ``variation`` the variant's label (``"ホワイト / S"``); ``stock`` the channel's current stock,
    ``None`` when the channel does not manage it; ``extra`` a plain JSON-able dict of the
    platform's own ids and of the attributes a later push must keep."""

    identifier: str
    name: str
    code: str | None = None
    stock: int | None = None
    extra: dict = field(default_factory=dict)
    variation: str | None = None
    image_url: str | None = None


@runtime_checkable
class CatalogueLister(Protocol):
    catalogue_total: int | None
    """How many items the platform said it holds, set once the first page has answered;
    ``None`` before that and when the platform does not say. It is the platform's own count:
    ColorMe counts products, each of which may list as several variants."""

    def list_catalogue(self, *, pace_s: float = 0.0) -> Iterator[ChannelItem]:
        """Every item and variant of the channel's catalogue, page by page, sleeping ``pace_s``
        seconds between page requests (the caller paces to a fraction of the platform's
        ``rate_per_s``). Errors are those of the client's other calls: :class:`AuthError` for a
        refused token, :class:`TemporaryError` (``retry_after`` when known) for a throttled or
        unavailable page."""


@dataclass(frozen=True)
class ChannelOrderLine:
    """One line of a web order as the channel holds it now.

    ``identifier`` is the listing's identifier, the same one :class:`ChannelItem` gives and the
    client writes stock by, so the order pipeline finds the listing (and its product) by it.
    ``line_id`` is the channel's own id of the line (ColorMe ``details[].id``, NextEngine
    ``receive_order_row_no``, Shopify's line item id). A cancelled line is given with
    ``quantity`` 0 (ColorMe's cancel sets ``product_num`` 0; NextEngine's cancel flag)."""

    line_id: str
    identifier: str
    quantity: int
    code: str | None = None  # the SKU / 型番 / 商品コード the order shows (for the merchant)
    title: str = ""
    unit_price: int | None = None  # yen, tax included, as the channel charged it


@dataclass(frozen=True)
class ChannelOrder:
    """One web order, as the channel holds it at the moment it was read.

    ``status`` is the platform's own status, as it says it (ColorMe: ``paid``/``delivered``
    flags folded into one word, NextEngine ``receive_order_order_status_id``, Shopify
    ``displayFulfillmentStatus``): the channel's status conditions are matched against it.
    ``cancelled`` is the platform's cancellation, normalised. ``updated_at`` is the channel's
    last-modified time of the order: the poll cursor moves by it."""

    order_id: str
    ordered_at: datetime
    updated_at: datetime
    status: str
    cancelled: bool
    lines: tuple[ChannelOrderLine, ...]


@runtime_checkable
class OrderReader(Protocol):
    def read_orders(self, since: datetime, *, pace_s: float = 0.0) -> Iterator[ChannelOrder]:
        """Every order placed or changed at or after ``since`` (aware UTC; compared with the
        channel's last-modified time), every page, oldest change first; ``pace_s`` seconds
        between page requests. Cancelled orders are included (``cancelled`` True): a
        cancellation is news. Errors as for the other calls: :class:`AuthError` for a refused
        or expired token, :class:`TemporaryError` for a throttled or unavailable page."""


@runtime_checkable
class SingleOrderReader(Protocol):
    def read_order(self, order_id: str) -> ChannelOrder | None:
        """One order by the channel's id (what an order webhook names), or None when the channel
        has no such order. Errors as :meth:`OrderReader.read_orders`."""


@runtime_checkable
class OrderChangeLister(Protocol):
    def list_order_changes(self, since: datetime, *, pace_s: float = 0.0) -> Iterator[tuple[str, datetime]]:
        """``(order id, last-modified time)`` of every order changed at or after ``since``, as
        :meth:`OrderReader.read_orders` would give them but without their lines: where a whole
        order costs many times its id (Shopify prices a page by what it may hold), a poll lists
        the changes and reads in full only those not yet taken in. Errors as ``read_orders``."""


class WebhookRefused(Exception):
    """An order webhook that does not prove it comes from the channel (a missing or wrong signature)."""


class WebhookMalformed(ValueError):
    """An order webhook whose headers or body are not what the platform sends."""


@dataclass(frozen=True)
class WebhookDelivery:
    """What an order webhook says, once its signature is checked: the topic, the platform's id
    of this delivery (a redelivery carries the same one) and the order it is about."""

    topic: str
    delivery_id: str
    order_id: str | None
