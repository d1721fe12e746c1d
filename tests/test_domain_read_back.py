"""The read-back rules (stocklink/domain/read_back.py): the budget, what counts as news from a
channel, when a push may raise a channel (SPEC §11.6), and when a channel's sync is stale."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from stocklink.domain.read_back import READ_BACK_SHARE, channel_news_at, is_stale, may_raise, read_budget

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=1)
EARLIER = T0 - timedelta(seconds=1)


@pytest.mark.parametrize(("rate", "interval", "budget"), [
    (2.0, 10, 5),      # ColorMe / Shopify: a quarter of 2 req/s over 10 s
    (2.0, 30, 15),
    (0.1, 10, 1),      # a very slow channel is still read, once a run
    (40.0, 10, 100),
    (2.0, 1, 1),       # floor(0.5) would be 0
])
def test_the_budget_is_a_quarter_of_the_rate_over_the_interval(rate, interval, budget):
    """read_budget = max(1, floor(rate × ¼ × interval))."""
    assert READ_BACK_SHARE == Fraction(1, 4)
    assert read_budget(rate, interval) == budget


@pytest.mark.parametrize(("rate", "interval"), [(0, 10), (-1, 10), (2.0, 0)])
def test_a_budget_needs_a_positive_rate_and_interval(rate, interval):
    """A zero or negative rate or interval is a declaration error, refused by name."""
    with pytest.raises(ValueError, match="positive"):
        read_budget(rate, interval)


def test_news_is_a_channel_value_stocklink_did_not_write():
    """The channel's value is news when it differs from what stocklink last wrote there."""
    assert channel_news_at(5, T0, 20) == T0          # the merchant edited 20 → 5
    assert channel_news_at(5, T0, None) == T0        # never written by stocklink
    assert channel_news_at(20, T0, 20) is None       # our own write confirmed
    assert channel_news_at(None, T0, 20) is None     # nothing known
    assert channel_news_at(5, None, 20) is None      # no time for it


@pytest.mark.parametrize(("target", "channel", "open_", "news_at", "fact_at", "allowed"), [
    (3, 5, True, T0, EARLIER, True),       # lowering is always allowed
    (5, 5, True, T0, EARLIER, True),       # keeping too
    (9, None, False, None, None, True),    # over an unknown value
    (19, 5, True, T0, LATER, False),       # the trial: a POS sale after the read, difference open
    (19, 5, False, T0, EARLIER, False),    # a figure from before the read (a stale compare-and-set)
    (19, 5, False, T0, T0, False),         # same instant: not newer
    (19, 5, False, T0, None, False),       # a figure of unknown age
    (19, 5, False, T0, LATER, True),       # a restock at the POS after the read, no difference open
    (19, 5, False, None, EARLIER, True),   # no news: stocklink's own figure moves on
])
def test_may_raise(target, channel, open_, news_at, fact_at, allowed):
    """A raise needs no open difference and a fact newer than the channel's latest news."""
    assert may_raise(target, channel, difference_open=open_, news_at=news_at, fact_at=fact_at) is allowed


LIMIT = timedelta(minutes=30)


@pytest.mark.parametrize(("read", "write", "now", "waiting", "stale"), [
    (None, T0, T0 + timedelta(minutes=31), True, True),
    (None, T0, T0 + timedelta(minutes=31), False, False),                 # nothing waits: quiet is fine
    (T0 + timedelta(minutes=20), T0, T0 + timedelta(minutes=31), True, False),  # a read counts too
    (None, T0, T0 + timedelta(minutes=30), True, False),                  # at the threshold, not over
    (None, None, T0 + timedelta(minutes=31), True, True),                 # never synced since it was added
    (None, None, T0 + timedelta(minutes=5), True, False),
])
def test_is_stale(read, write, now, waiting, stale):
    """Stale: work waits and the latest successful read or write is older than the threshold."""
    assert is_stale(read, write, T0, now, LIMIT, work_waiting=waiting) is stale


def test_a_channel_offering_less_than_the_total_has_sold_unheard():
    from stocklink.domain.read_back import sold_unheard
    assert sold_unheard(2, 0, 3)
    assert not sold_unheard(3, 0, 3)
    assert not sold_unheard(4, -1, 3)  # the -1 not sent yet: it will offer 3
    assert sold_unheard(3, -1, 3)
    assert not sold_unheard(None, 0, 3)  # not known
    assert not sold_unheard(0, 0, -2)  # a negative total: nothing to offer, nothing less
