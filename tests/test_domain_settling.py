"""The settle rule for channel writes whose outcome is unknown (stocklink/domain/settling.py)."""
from hypothesis import given
from hypothesis import strategies as st

from stocklink.domain.settling import Outcome, may_resend, settle


def test_read_equal_to_the_target_is_applied():
    assert settle(before=998, after=988, read=988) is Outcome.APPLIED


def test_read_equal_to_the_old_value_is_not_applied():
    assert settle(before=998, after=988, read=998) is Outcome.NOT_APPLIED


def test_anything_else_is_ambiguous():
    # ColorMe's -10 applied twice (the fault probe: 978), or applied plus a channel sale.
    assert settle(before=998, after=988, read=978) is Outcome.AMBIGUOUS
    assert settle(before=998, after=988, read=None) is Outcome.AMBIGUOUS


def test_unknown_before_applies_or_is_ambiguous():
    assert settle(before=None, after=5, read=5) is Outcome.APPLIED
    assert settle(before=None, after=5, read=7) is Outcome.AMBIGUOUS


def test_a_relative_write_is_never_resent_when_ambiguous():
    assert may_resend("relative", Outcome.NOT_APPLIED)
    assert not may_resend("relative", Outcome.AMBIGUOUS)
    assert not may_resend("relative", Outcome.APPLIED)
    assert may_resend("compare_and_set", Outcome.AMBIGUOUS)
    assert may_resend("absolute", Outcome.AMBIGUOUS)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_resending_a_relative_write_never_moves_the_channel_past_its_target(before, after, read):
    """If the rule allows a resend of ``after - before`` on top of ``read``, the result is ``after``."""
    outcome = settle(before, after, read)
    if may_resend("relative", outcome):
        assert read + (after - before) == after
