"""Delta channels: what a Smaregi stock movement becomes on NextEngine (seed 001 §5, SPEC §3).

Smaregi allows negative stock; NextEngine does not. Forwarding every Smaregi change as
it is would leave NextEngine counting from the wrong floor once Smaregi has gone below
zero, so increases are cut to the part that lands above zero.

The movements are Smaregi's 在庫変動履歴 entries, each applied once by its id (a cursor per
product: the last id applied), never a notification's body: two genuine movements can be
notified in byte-identical bodies (sale, return, sale within one second), and a dropped
notification must still be forwarded when the history is read later.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class StockDivision(StrEnum):
    """Smaregi 在庫区分 ``stockDivision``: why a stock movement happened (platform-apis-smaregi §4.1)."""

    CORRECTION = "01"
    SALE = "02"
    PURCHASE = "03"
    TRANSFER_OUT = "04"
    TRANSFER_IN = "05"
    RENTAL = "06"
    LAYAWAY = "07"
    STOCKTAKE = "08"
    ADJUSTMENT = "09"
    SHIPMENT = "10"
    EC_LINK = "11"
    RETURN = "12"
    PROMOTIONAL = "13"
    LOSS = "14"
    API = "15"
    SALES_ALLOCATION = "16"
    RECEIVING_SHORTAGE = "17"
    ORDER_ALLOCATION = "18"


# Seed 001 §5: stocktake and loss "may rewrite past stock", so their change is forwarded
# whatever the resulting stock is.
_FORWARDED_AS_IS = frozenset({StockDivision.STOCKTAKE, StockDivision.LOSS})


def _division_code(stock_division: str) -> str:
    # Smaregi sends "08"; a spreadsheet or a hand-written fixture may say "8".
    code = str(stock_division).strip()
    return code.zfill(2) if code.isdigit() else code


def nextengine_delta(amount: int, stock_after: int, stock_division: str) -> int | None:
    """Return the change to send to NextEngine for one Smaregi movement, or ``None`` to send nothing.

    ``amount`` is the signed change (Smaregi ``amount``), ``stock_after`` the stock
    after it (``stockAmount``), ``stock_division`` the 在庫区分 code (``"08"``; ``"8"``
    is accepted too). Seed 001 §5 and §6:

    - shipment ``10`` 出荷 → ``None``: it records a web sale NextEngine already deducted
      (forwarding it would deduct twice);
    - stocktake ``08`` 棚卸 and loss ``14`` ロス → ``amount`` as it is;
    - any other decrease → ``amount`` as it is, whatever the stock after it;
    - any other increase ``inc`` → ``max(0, min(inc, stock_after))``: the part of the
      increase that lands above zero (2 +3 → 5 sends +3; −5 +3 → −2 sends 0;
      −3 +5 → 2 sends +2).

    A division code Smaregi adds later falls under "any other", the seed's default.
    A returned 0 is a real answer (the seed "notifies 0"), not a movement to leave out.
    """
    code = _division_code(stock_division)
    if code == StockDivision.SHIPMENT:
        return None
    if code in _FORWARDED_AS_IS or amount <= 0:
        return amount
    return max(0, min(amount, stock_after))


@dataclass(frozen=True)
class HistoryEntry:
    """One 在庫変動履歴 entry as the delta rules need it: its id, the signed change, the stock
    after it, the 在庫区分 and Smaregi's timestamp text (legacy ``YYYY-MM-DD HH:MM:SS``)."""

    id: int
    amount: int
    stock_after: int
    division: str
    at: str = ""


def history_delta(entries: Iterable[HistoryEntry], after: int) -> tuple[int, int]:
    """The NextEngine change of the entries not applied yet, and the cursor to store next.

    An entry is applied when its id is greater than ``after`` (the last id applied); each id
    counts once however often it is listed, in id order. The returned cursor is the largest
    id seen (``after`` if none is newer), so a shipment, which forwards nothing, is still
    passed. Relies on Smaregi's ids growing in the order the movements are recorded.
    """
    fresh = {entry.id: entry for entry in entries if entry.id > after}
    total = 0
    for entry_id in sorted(fresh):
        entry = fresh[entry_id]
        total += nextengine_delta(entry.amount, entry.stock_after, entry.division) or 0
    return total, max(fresh, default=after)


def legacy_anchor(entries: Iterable[HistoryEntry], notified: Iterable[HistoryEntry]) -> int | None:
    """Where a product without a cursor starts: the id *after which* entries are applied.

    A legacy 在庫情報送信 row carries the entry's fields but not its id, so the entry is found by
    them: among the entries recorded in the notified second with the same change, stock after
    and 在庫区分, the earliest (identical movements in one second are all applied from there).
    When none matches, the earliest entry of that second or later. ``None``: nothing found
    (the notification is older than anything listed), so nothing is applied.
    """
    entries = sorted(entries, key=lambda e: e.id)
    starts = []
    for row in notified:
        key = (row.amount, row.stock_after, _division_code(row.division), row.at)
        same = [e.id for e in entries if (e.amount, e.stock_after, _division_code(e.division), e.at) == key]
        later = [e.id for e in entries if e.at >= row.at]
        if same or later:
            starts.append((same or later)[0])
    return min(starts) - 1 if starts else None


# The 在庫区分 Smaregi records for stocklink's own registrations of web orders: 出荷, or a
# transaction's 売上 (and their cancellations, the same division with the opposite sign).
ECHO_DIVISIONS = frozenset({StockDivision.SHIPMENT, StockDivision.SALE})


def without_echoes(entries: Iterable[HistoryEntry], after: int,
                   expected: Iterable[tuple[int, int]]) -> tuple[list[HistoryEntry], list[int]]:
    """Stocklink's own registrations out of the entries not applied yet (SPEC §5; seed 001 §6).

    A web order's units reach the delta channels when they are reserved (and come back when
    they are given back), so the movement Smaregi records for the order's registration, or its
    cancellation, must not be forwarded again — not even as a transaction's 売上, which a POS sale
    would be. ``expected`` lists ``(expectation id, amount)`` in the order they were made; each is
    matched, oldest first, to the oldest fresh entry of that amount and an echo division. Two
    movements of the same amount and division count the same, so which of them is dropped does not
    change what is forwarded. Returns the entries left and the ids of the expectations matched."""
    fresh = sorted((e for e in entries if e.id > after), key=lambda e: e.id)
    taken: set[int] = set()
    matched = []
    for expectation_id, amount in expected:
        for entry in fresh:
            if entry.id not in taken and entry.amount == amount and _division_code(entry.division) in ECHO_DIVISIONS:
                taken.add(entry.id)
                matched.append(expectation_id)
                break
    return [e for e in fresh if e.id not in taken], matched
