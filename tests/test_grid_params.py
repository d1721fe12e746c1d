"""Reading the grid's filters from a query string: a pure function, bad values named and dropped."""
from __future__ import annotations

import pytest

from stocklink.web.grid_params import GridFilters, parse_filters


@pytest.fixture(autouse=True)
def _context(app):
    with app.test_request_context():  # the sentences are gettext messages
        yield


def test_every_filter_is_read():
    """Each argument lands in its field, and query() gives the same arguments back."""
    args = {"kind": "set", "channel": "3", "q": " Tシャツ,白 ", "total_min": "1", "total_max": "1,000",
            "link": "problem", "sync": "off", "diff": "1", "page": "4"}
    filters = parse_filters(args)
    assert filters == GridFilters(kind="set", channel_id=3, keyword="Tシャツ,白", total_min=1, total_max=1000,
                                  link="problem", sync="off", difference=True, page=4)
    assert filters.problems == () and filters.words == ["tシャツ", "白"]
    assert parse_filters(filters.query()) == filters
    assert filters.query(page=None) == {k: v for k, v in {**args, "q": "Tシャツ,白", "total_max": "1000"}.items()
                                        if k != "page"}


def test_defaults_leave_the_query_empty():
    """No argument: every product, page 1, and no argument to carry."""
    filters = parse_filters({})
    assert filters == GridFilters() and filters.query() == {} and filters.total_range == (None, None)


def test_an_exact_total_is_a_range_of_one():
    """total=5 searches 5..5; negative totals are allowed (Smaregi stock may be negative)."""
    assert parse_filters({"total": "5"}).total_range == (5, 5)
    assert parse_filters({"total_max": "-2"}).total_range == (None, -2)


@pytest.mark.parametrize("args", [
    {"total": "abc"}, {"total": "1.5"}, {"total_min": "9999999999"}, {"total_min": "5", "total_max": "1"},
    {"total": "3", "total_max": "4"}, {"link": "maybe"}, {"sync": "yes"}, {"kind": "x"}, {"diff": "2"},
    {"channel": "-1"}, {"channel": "0"}, {"page": "0"}, {"page": "x"}, {"page": "3000000000"},
    {"q": "あ" * 201},
])
def test_a_bad_value_is_named_and_dropped(args):
    """Whatever is unusable gives one sentence and falls back to the default for it."""
    filters = parse_filters(args)
    assert len(filters.problems) == 1
    assert filters.page == 1 and filters.link == "" and filters.sync == "" and filters.kind == "all"
    assert filters.channel_id is None and filters.difference is False
    assert filters.total_range in ((None, None), (3, 3))
    assert len(filters.keyword) <= 200
