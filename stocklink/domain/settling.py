"""Settling a channel write whose outcome is unknown, from what the channel holds now.

Pure: no Flask, database or HTTP. A write was recorded as an intent before it was sent
(``before``: the quantity stocklink expected on the channel, ``after``: the one it wanted);
the answer never came back (timeout, reset, worker killed mid-call). The channel is read
back and :func:`settle` says what happened, and :func:`may_resend` whether the write may
be sent again.
"""
from __future__ import annotations

from enum import StrEnum

# Modes whose repetition cannot double anything: the channel ends at ``after`` however
# often the write arrives (Shopify's compare-and-set also refuses a stale one).
IDEMPOTENT_MODES = frozenset({"absolute", "compare_and_set"})


class Outcome(StrEnum):
    APPLIED = "applied"          # the channel holds what the write wanted
    NOT_APPLIED = "not_applied"  # the channel still holds what it held before
    AMBIGUOUS = "ambiguous"      # neither: the channel moved by itself too, or the item is gone


def settle(before: int | None, after: int | None, read: int | None) -> Outcome:
    """What became of a write from ``before`` to ``after``, given the channel now holds ``read``.

    ``read`` equal to ``after`` is taken as applied even when it equals ``before`` too (a
    write that changes nothing); an unreadable item (``None``) is ambiguous.
    """
    if read is None:
        return Outcome.AMBIGUOUS
    if after is not None and read == after:
        return Outcome.APPLIED
    if before is not None and read == before:
        return Outcome.NOT_APPLIED
    return Outcome.AMBIGUOUS


def may_resend(mode: str, outcome: Outcome) -> bool:
    """Whether the listing may be written again right away.

    Not applied: always (the channel holds ``before``, so a relative write from it is
    right). Ambiguous: only for idempotent modes; a relative write might then be applied
    a second time, so the listing is shown as a difference for the merchant instead.
    """
    if outcome is Outcome.APPLIED:
        return False
    return outcome is Outcome.NOT_APPLIED or mode in IDEMPOTENT_MODES
