"""NextEngine delta rules for negative stock (seed 001 §5 and §6, SPEC §3)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stocklink.domain.delta import (
    HistoryEntry,
    StockDivision,
    history_delta,
    legacy_anchor,
    nextengine_delta,
)

FAST = settings(max_examples=60, deadline=None, database=None)

# Divisions that follow the increase / decrease rules: everything but stocktake,
# loss and shipment.
OTHER_DIVISIONS = [d for d in StockDivision if d not in {"08", "10", "14"}]

MOVEMENT = st.tuples(st.integers(-50, 50), st.sampled_from(OTHER_DIVISIONS))


@pytest.mark.parametrize(
    ("amount", "stock_after", "division", "expected"),
    [
        pytest.param(3, 5, "02", 3, id="seed001-2-plus-3-is-5-sends-3"),
        pytest.param(3, -2, "02", 0, id="seed001-minus5-plus-3-is-minus2-sends-0"),
        pytest.param(5, 2, "02", 2, id="seed001-minus3-plus-5-is-2-sends-2"),
        pytest.param(3, 0, "12", 0, id="increase-to-exactly-zero-sends-0"),
        pytest.param(-2, 3, "02", -2, id="decrease-as-is"),
        pytest.param(-4, -1, "02", -4, id="decrease-into-negative-as-is"),
        pytest.param(-4, -10, "01", -4, id="decrease-while-negative-as-is"),
        pytest.param(3, -2, "08", 3, id="stocktake-increase-as-is-even-below-zero"),
        pytest.param(-5, -3, "08", -5, id="stocktake-decrease-as-is"),
        pytest.param(4, -1, "14", 4, id="loss-correction-as-is-even-below-zero"),
        pytest.param(-5, -3, "14", -5, id="loss-as-is"),
        pytest.param(-2, 5, "10", None, id="shipment-not-forwarded"),
        pytest.param(2, 5, "10", None, id="shipment-increase-not-forwarded"),
        pytest.param(3, -2, "8", 3, id="unpadded-stocktake-code"),
        pytest.param(-1, 4, "10 ", None, id="shipment-code-with-space"),
        pytest.param(5, 2, StockDivision.API, 2, id="enum-member-as-division"),
        pytest.param(5, 2, "99", 2, id="unknown-division-follows-the-general-rule"),
        pytest.param(0, -3, "02", 0, id="no-change"),
    ],
)
def test_nextengine_delta(amount, stock_after, division, expected):
    """Each Smaregi movement becomes the change seed 001 §5 says to send, or nothing for a shipment."""
    assert nextengine_delta(amount, stock_after, division) == expected


def _run(start, movements):
    """Yield (amount, stock after, division) for a Smaregi stream starting at ``start``."""
    stock = start
    for amount, division in movements:
        stock += amount
        yield amount, stock, division


@FAST
@given(start=st.integers(-100, 100), movements=st.lists(MOVEMENT, max_size=30))
def test_nextengine_mirrors_smaregi_floored_at_zero(start, movements):
    """A NextEngine that cannot go below 0 shows max(0, Smaregi stock) after any stream of movements."""
    nextengine = max(0, start)
    smaregi = start
    for amount, after, division in _run(start, movements):
        nextengine = max(0, nextengine + nextengine_delta(amount, after, division))
        smaregi = after
        assert nextengine == max(0, smaregi)


@FAST
@given(start=st.integers(0, 100), movements=st.lists(MOVEMENT, max_size=30))
def test_never_negative_stream_is_forwarded_exactly(start, movements):
    """While Smaregi stock never goes below 0, the forwarded deltas add up to exactly its change."""
    stock = start
    kept = []
    for amount, division in movements:
        amount = max(amount, -stock)
        stock += amount
        kept.append((amount, division))
    forwarded = [nextengine_delta(amount, after, division) for amount, after, division in _run(start, kept)]
    assert sum(forwarded) == stock - start


@FAST
@given(
    amount=st.integers(-1_000, 1_000),
    stock_after=st.integers(-1_000, 1_000),
    division=st.sampled_from(OTHER_DIVISIONS),
)
def test_increases_never_grow_and_decreases_pass_unchanged(amount, stock_after, division):
    """An increase is forwarded as 0..its size, never more; a decrease is forwarded as it is."""
    delta = nextengine_delta(amount, stock_after, division)
    if amount > 0:
        assert 0 <= delta <= amount
    else:
        assert delta == amount


@FAST
@given(amount=st.integers(-1_000, 1_000), stock_after=st.integers(-1_000, 1_000))
def test_stocktake_and_loss_forwarded_and_shipment_dropped_whatever_the_stock(amount, stock_after):
    """At any stock level, stocktake and loss pass their change unchanged and a shipment is dropped."""
    assert nextengine_delta(amount, stock_after, StockDivision.STOCKTAKE) == amount
    assert nextengine_delta(amount, stock_after, StockDivision.LOSS) == amount
    assert nextengine_delta(amount, stock_after, StockDivision.SHIPMENT) is None


def _entries(start_id, start_stock, movements, at="2026-12-01 10:00:00"):
    """History entries with consecutive ids for (amount, division) movements from ``start_stock``."""
    return [HistoryEntry(start_id + n, amount, after, division, at)
            for n, (amount, after, division) in enumerate(_run(start_stock, movements))]


SALE_RETURN_SALE = _entries(11, 10, [(-1, "02"), (1, "12"), (-1, "02")])


@pytest.mark.parametrize(
    ("entries", "after", "expected"),
    [
        pytest.param(SALE_RETURN_SALE, 10, (-1, 13), id="sale-return-sale-each-entry-once"),
        pytest.param(SALE_RETURN_SALE + SALE_RETURN_SALE[::-1], 10, (-1, 13), id="an-id-listed-twice-counts-once"),
        pytest.param(SALE_RETURN_SALE, 11, (0, 13), id="entries-up-to-the-cursor-are-not-applied-again"),
        pytest.param(SALE_RETURN_SALE, 13, (0, 13), id="nothing-after-the-cursor"),
        pytest.param([], 42, (0, 42), id="no-entries-keeps-the-cursor"),
        pytest.param(_entries(5, 3, [(-1, "10"), (-2, "02")]), 4, (-2, 6), id="a-shipment-moves-the-cursor-only"),
        pytest.param(_entries(5, -5, [(3, "01"), (5, "12")]), 4, (3, 6), id="negative-stock-rules-per-entry"),
        pytest.param(_entries(5, -5, [(3, "08")]), 4, (3, 5), id="stocktake-as-is"),
    ],
)
def test_history_delta(entries, after, expected):
    """History entries past the cursor become one summed delta by the seed 001 rules, and the cursor
    moves to the newest entry seen."""
    assert history_delta(entries, after) == expected


@FAST
@given(start=st.integers(-30, 30), movements=st.lists(MOVEMENT, max_size=20), cut=st.integers(0, 20),
       repeat=st.integers(1, 3))
def test_history_read_in_pieces_and_again_forwards_each_movement_once(start, movements, cut, repeat):
    """However the history is read (in two pieces, re-read whole, entries repeated), carrying the
    cursor forward gives the same total as applying every movement once."""
    entries = _entries(1, start, movements)
    once = sum(nextengine_delta(e.amount, e.stock_after, e.division) or 0 for e in entries)
    first, cursor = history_delta(entries[:cut] * repeat, 0)
    second, cursor = history_delta(entries * repeat, cursor)
    third, cursor = history_delta(entries, cursor)
    assert first + second + third == once
    assert third == 0 and cursor == len(entries)


def test_legacy_anchor_finds_the_earliest_identical_entry_of_the_second():
    """A legacy notification (no id) starts at the earliest entry with its fields in its second,
    so sale → return → sale notified in identical bodies is applied from the first sale on."""
    sale = HistoryEntry(0, -1, 9, "02", "2026-12-01 10:00:00")
    older = HistoryEntry(3, -1, 9, "02", "2026-12-01 09:59:59")  # same fields, an earlier second
    assert legacy_anchor([older] + SALE_RETURN_SALE, [sale]) == 10
    assert legacy_anchor(SALE_RETURN_SALE, [HistoryEntry(0, 1, 10, "12", "2026-12-01 10:00:00")]) == 11


def test_legacy_anchor_without_a_match_starts_at_the_notified_second():
    """No entry with the notified fields: the earliest entry of that second or later; none: None."""
    other = HistoryEntry(0, -4, 1, "02", "2026-12-01 10:00:00")
    assert legacy_anchor(SALE_RETURN_SALE, [other]) == 10
    assert legacy_anchor(SALE_RETURN_SALE, [HistoryEntry(0, -1, 9, "02", "2026-12-01 10:00:01")]) is None
    assert legacy_anchor([], [other]) is None


def test_stocklinks_own_registrations_are_taken_out_oldest_first_and_only_once():
    from stocklink.domain.delta import HistoryEntry, history_delta, without_echoes
    entries = [HistoryEntry(11, -2, 8, "02"), HistoryEntry(12, -2, 6, "02"), HistoryEntry(13, -1, 5, "01"),
               HistoryEntry(14, 2, 7, "10")]
    kept, matched = without_echoes(entries, 10, [(1, -2), (2, -1), (3, 2)])
    # -2 02 matches the first sale; -1 is a correction, not a registration: kept; +2 10 matches.
    assert [e.id for e in kept] == [12, 13] and matched == [1, 3]
    assert history_delta(kept, 10)[0] == -3
    # Entries already applied are never matched; nothing expected: nothing dropped.
    assert without_echoes(entries, 12, [(1, -2)]) == ([HistoryEntry(13, -1, 5, "01"), HistoryEntry(14, 2, 7, "10")], [])
    assert without_echoes(entries, 10, [])[1] == []
