"""The order rules, pure: what a revision is, what it deducts, which orders count, how far back a poll reads."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stocklink.domain.orders import (
    CLOCK_SKEW,
    OVERLAP,
    RECENT_MARGIN,
    Deduction,
    Held,
    Ignored,
    Line,
    deductions,
    fingerprint,
    ignored_because,
    next_cursor,
    orders_to_read,
    poll_interval_s,
    read_since,
    recent_since,
    registration_key,
    reserved_by_product,
)

T = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_same_content_read_again_is_the_same_revision_in_any_line_order():
    a = [Line("1", "TS-S", 2), Line("2", "MUG", 1)]
    assert fingerprint(False, a) == fingerprint(False, list(reversed(a)))
    assert len(fingerprint(False, a)) == 32


def test_a_changed_quantity_a_removed_line_or_a_cancellation_is_a_new_revision():
    base = fingerprint(False, [Line("1", "TS-S", 2), Line("2", "MUG", 1)])
    assert fingerprint(False, [Line("1", "TS-S", 3), Line("2", "MUG", 1)]) != base
    assert fingerprint(False, [Line("1", "TS-S", 2)]) != base
    # A line at quantity 0 is a line removed (ColorMe's cancel sets product_num 0).
    assert fingerprint(False, [Line("1", "TS-S", 2), Line("2", "MUG", 0)]) == fingerprint(False, [Line("1", "TS-S", 2)])
    assert fingerprint(True, [Line("1", "TS-S", 2)]) == fingerprint(True, []) != base


def test_a_line_moved_to_another_listing_is_a_new_revision():
    assert fingerprint(False, [Line("1", "TS-S", 2)]) != fingerprint(False, [Line("1", "TS-M", 2)])


def test_orders_before_the_starting_point_or_outside_the_status_conditions_are_ignored():
    assert ignored_because(T, "paid", start_at=None, statuses=None) is None
    assert ignored_because(T - timedelta(seconds=1), "paid", start_at=T, statuses=None) is Ignored.BEFORE_START
    assert ignored_because(T, "paid", start_at=T, statuses=None) is None  # at the starting point: counted
    # The channel said 09:00:00 for an order placed at 09:00:00.4, after a start at 09:00:00.2.
    assert ignored_because(T, "paid", start_at=T + timedelta(milliseconds=200), statuses=None) is None
    assert ignored_because(T, "1", start_at=None, statuses={"1", "2"}) is None
    assert ignored_because(T, "40", start_at=None, statuses={"1", "2"}) is Ignored.STATUS
    assert ignored_because(T, "40", start_at=None, statuses=[]) is None  # no conditions: every status


def test_a_line_deducts_its_product_and_a_set_line_each_component():
    rows = deductions([Line("1", "TS-S", 2), Line("2", "GIFT", 3), Line("3", "GONE", 1), Line("4", "MUG", 0)],
                      {"TS-S": 10, "GIFT": 50, "GONE": None, "MUG": 11}, {50: [(10, 1), (11, 2)]})
    assert rows == [Deduction("1", "TS-S", 10, 2), Deduction("2", "GIFT", 10, 3), Deduction("2", "GIFT", 11, 6),
                    Deduction("3", "GONE", None, 1)]
    assert reserved_by_product(rows) == {10: 5, 11: 6}


def test_an_unknown_identifier_deducts_nothing_but_is_recorded():
    assert deductions([Line("9", "NOPE", 4)], {}, {}) == [Deduction("9", "NOPE", None, 4)]
    assert reserved_by_product(deductions([Line("9", "NOPE", 4)], {}, {})) == {}


def test_two_lines_of_one_listing_stay_two_rows_and_one_line_sums_per_product():
    rows = deductions([Line("1", "TS-S", 1), Line("2", "TS-S", 2)], {"TS-S": 10}, {})
    assert [r.quantity for r in rows] == [1, 2]
    # A set holding one component twice over, as two set_components rows would not: summed.
    assert deductions([Line("1", "SET", 2)], {"SET": 5}, {5: [(10, 1), (10, 1)]}) == [Deduction("1", "SET", 10, 4)]


def test_each_poll_reads_again_from_the_cursor_less_the_overlap_never_before_the_start():
    assert read_since(T, None, T + timedelta(hours=1)) == T - OVERLAP
    assert read_since(T, T - timedelta(minutes=1), T) == T - timedelta(minutes=1)
    assert read_since(None, None, T) == T - OVERLAP
    assert read_since(None, T - timedelta(days=2), T) == T - timedelta(days=2)  # 初期受注取得 two days back


def test_a_read_before_a_raise_starts_shortly_before_the_previous_read_not_a_whole_overlap():
    previous = T + timedelta(minutes=7)
    assert recent_since(previous, T, None, T + timedelta(minutes=8)) == previous - RECENT_MARGIN
    assert RECENT_MARGIN < OVERLAP
    assert recent_since(previous, T, previous, T + timedelta(minutes=8)) == previous  # never before the start
    # No previous read known (Redis lost): where a poll would read from.
    assert recent_since(None, T, None, T + timedelta(minutes=8)) == T - OVERLAP
    assert recent_since(None, None, T - timedelta(days=1), T) == T - timedelta(days=1)


def test_the_cursor_moves_to_the_start_of_a_complete_poll_and_never_back():
    assert next_cursor(None, T) == T
    assert next_cursor(T, T + timedelta(minutes=3)) == T + timedelta(minutes=3)
    assert next_cursor(T + timedelta(minutes=5), T) == T + timedelta(minutes=5)


def test_poll_interval_is_three_minutes_or_one_with_speed_up():
    assert (poll_interval_s(False), poll_interval_s(True)) == (180, 60)
    assert (poll_interval_s(False, 300), poll_interval_s(True, 300)) == (300, 60)


def test_registration_keys_are_stable_short_and_distinct():
    key = registration_key(3, "A-1001", 1, "register")
    assert key == registration_key(3, "A-1001", 1, "register") and len(key) <= 32
    assert len({key, registration_key(3, "A-1001", 2, "register"), registration_key(3, "A-1001", 1, "cancel"),
                registration_key(4, "A-1001", 1, "register")}) == 4


def test_a_listing_of_changes_has_only_the_orders_not_held_as_they_are_read_whole():
    s = timedelta(seconds=1)
    held = {
        "A": Held(T, T + 30 * s),                 # taken, read well after its time: up to date
        "B": Held(T, T + 30 * s),                 # changed since (a later time): read again
        "C": Held(T, T + 200 * timedelta(milliseconds=1)),  # read within its own second: maybe a 2nd change
        "D": Held(T + 500 * timedelta(milliseconds=1), T + 3 * s),  # within the clock skew after it
        "E": Held(None, None),                    # a row with no channel time
    }
    changes = [("A", T), ("B", T + 5 * s), ("C", T), ("D", T), ("N", T + 6 * s), ("E", T), ("N", T + 7 * s)]
    assert orders_to_read(changes, held) == ["B", "C", "D", "N", "E"]
    # Time to the second: a held time with microseconds is the same second as the listed one.
    assert orders_to_read([("A", T + 900 * timedelta(milliseconds=1))], {"A": Held(T, T + 10 * s)}) == []
    # Read a second and the clock skew after its time: every change of that second was seen.
    assert orders_to_read([("A", T)], {"A": Held(T, T + s + CLOCK_SKEW)}) == []
    assert orders_to_read([("A", T)], {"A": Held(T, T + s + CLOCK_SKEW - timedelta(microseconds=1))}) == ["A"]
    # An older time than held (a listing overtaken by a webhook's read): nothing to read.
    assert orders_to_read([("A", T)], {"A": Held(T + 5 * s, T + 30 * s)}) == []
    # Before a raise the same-second doubt is left to the next poll: only new and newer orders.
    assert orders_to_read(changes, held, same_second=False) == ["B", "N", "E"]
