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

from collections.abc import Iterable
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
class DeltaWriter(StockReader, PendingWrites, Protocol):
    def upload_deltas(self, rows: list[tuple[str, int]], key: str) -> str:
        """Upload ``(identifier, delta)`` rows; returns the platform's ref for the upload,
        which stays pending (:class:`PendingWrites`) until the platform has processed it."""

    def uploads_since(self, moment: datetime) -> list[dict]:
        """The uploads the platform received since ``moment`` (``{"ref", "status"}`` each,
        oldest first): how an upload whose answer was lost is found again."""


@dataclass(frozen=True)
class ChannelItem:
    """One item of a channel's catalogue, as the channel names it."""

    identifier: str
    name: str
    code: str | None = None
    stock: int | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class CatalogueLister(Protocol):
    def list_catalogue(self) -> Iterable[ChannelItem]:
        """Every item of the channel's catalogue, page by page as the platform allows."""


@dataclass(frozen=True)
class ChannelOrder:
    """One web order: its lines as ``(identifier, quantity)``."""

    order_id: str
    ordered_at: datetime
    status: str
    lines: tuple[tuple[str, int], ...]


@runtime_checkable
class OrderReader(Protocol):
    def read_orders(self, since: datetime) -> list[ChannelOrder]:
        """Orders placed or changed since ``since``, oldest first."""
