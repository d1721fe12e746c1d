"""Stock arithmetic: total stock, set availability, and the value pushed to a listing.

:func:`compute_push_quantity` is the one place where the number written to a listing
is decided (STYLE "one place for each thing"); every push, the difference report and
the product grid's "what would we push" column call it.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction


def total_stock(smaregi_stock: int, reserved: int) -> int:
    """Return what can be sold online: Smaregi stock minus web orders not yet in Smaregi (SPEC §3).

    Smaregi stock may be negative (Smaregi allows it), so the total may be too; clamping
    to a channel's range happens later, in :func:`compute_push_quantity`.

    :raise ValueError: if ``reserved`` is negative (a reservation is a quantity taken
        out of stock; a negative one would mean the reservation ledger is broken).
    """
    if reserved < 0:
        raise ValueError(f"reserved must not be negative, got {reserved}")
    return smaregi_stock - reserved


def set_availability(components: Iterable[tuple[int, int]]) -> int:
    """Return how many sets can be sold: ``min(total // quantity)`` over the components.

    ``components`` are ``(component total stock, quantity of it per set)`` pairs (seed
    004 セット商品; SPEC §3 step 1). A component whose total is zero or negative makes
    the set unavailable: it yields 0 sets, never a negative number of sets (Python's
    ``-1 // 2`` is ``-1``, which would otherwise leak a negative "availability" into
    the push and into arithmetic with other sets).

    :raise ValueError: if there are no components, or a quantity is zero or negative
        (a set made of nothing, or of "minus one" of something, is a data error, not a
        set with unlimited stock).
    """
    available: int | None = None
    for component_total, quantity in components:
        if quantity <= 0:
            raise ValueError(f"component quantity must be positive, got {quantity}")
        sets = max(0, component_total // quantity)
        available = sets if available is None else min(available, sets)
    if available is None:
        raise ValueError("a set product needs at least one component")
    return available


@dataclass(frozen=True)
class ChannelRange:
    """The stock values a channel accepts; values outside are clamped (seed 003).

    Seed 003 (Rakuuru Cart): Smaregi allows −999,999,999…999,999,999 but the cart only
    0…999,999, so a negative value is written as 0 and anything above as 999,999.
    The range must contain 0: every channel has to be able to show "sold out", which
    is what the minimum-stock guard writes.
    """

    minimum: int = 0
    maximum: int = 999_999

    def __post_init__(self) -> None:
        if not self.minimum <= 0 <= self.maximum:
            raise ValueError(f"a channel range must contain 0, got {self.minimum}..{self.maximum}")

    def clamp(self, value: int) -> int:
        """Return ``value`` moved to the nearest end of the range if it lies outside it."""
        return max(self.minimum, min(self.maximum, value))


CART_RANGE = ChannelRange(0, 999_999)
"""Seed 003's cart range (Rakuuru Cart): negative → 0, above 999,999 → 999,999."""

RAKUTEN_RANGE = ChannelRange(0, 99_999)
"""Rakuten accepts stock 0…99,999 (SPEC §3 step 4)."""

Ratio = Fraction | Decimal | int | str


@dataclass(frozen=True)
class QuantityPolicy:
    """A listing's quantity settings: minimum / maximum stock (seed 004), reserve and ratio (SPEC §11.7).

    - ``min_stock``: at or below it the listing shows 0 (oversell guard, 最小在庫数).
    - ``max_stock``: at or above it the listing shows ``max_stock`` (最大在庫数).
    - ``reserve``: units held back from this listing (保留在庫 / 余裕数).
    - ``ratio``: the share of the rest offered on this listing (在庫割当率), 0…1.

    ``ratio`` is kept as an exact :class:`~fractions.Fraction`; it may be given as a
    ``Fraction``, ``Decimal`` (a SQL ``NUMERIC`` column), ``int`` or a string such as
    ``"0.7"`` or ``"7/10"``. A ``float`` is refused: ``0.7`` as a float is
    0.6999…, and ``floor(0.7 × 10)`` would publish 6 instead of 7.

    :raise ValueError: on a negative setting, a ratio outside 0…1, or
        ``min_stock > max_stock``.
    :raise TypeError: on a float ratio.
    """

    min_stock: int | None = None
    max_stock: int | None = None
    reserve: int = 0
    ratio: Ratio = Fraction(1)

    def __post_init__(self) -> None:
        if isinstance(self.ratio, float):
            raise TypeError("ratio must be exact (Fraction, Decimal, int or str), not float")
        ratio = Fraction(self.ratio)
        if not 0 <= ratio <= 1:
            raise ValueError(f"ratio must be between 0 and 1, got {ratio}")
        object.__setattr__(self, "ratio", ratio)
        if self.reserve < 0:
            raise ValueError(f"reserve must not be negative, got {self.reserve}")
        if self.min_stock is not None and self.min_stock < 0:
            raise ValueError(f"min_stock must not be negative, got {self.min_stock}")
        if self.max_stock is not None and self.max_stock < 0:
            raise ValueError(f"max_stock must not be negative, got {self.max_stock}")
        if self.min_stock is not None and self.max_stock is not None and self.min_stock > self.max_stock:
            raise ValueError(f"min_stock {self.min_stock} is above max_stock {self.max_stock}")

    def allocate(self, base: int) -> int:
        """Return ``floor(ratio × (base − reserve))``: this listing's share before min / max / clamp."""
        return math.floor(Fraction(self.ratio) * (base - self.reserve))


@dataclass(frozen=True)
class PushDecision:
    """What to write to a listing: ``quantity``, and whether to ``push`` it."""

    quantity: int
    push: bool


def compute_push_quantity(
    base: int,
    policy: QuantityPolicy,
    channel_range: ChannelRange,
    last_confirmed: int | None,
) -> PushDecision:
    """Return the stock value for a listing and whether it must be pushed (SPEC §3, §11.7).

    This is THE function that computes a listing's push value; nothing else may.

    ``base`` is the product's total stock (:func:`total_stock`) or, for a set product,
    its set availability (:func:`set_availability`): SPEC §3 step 1. Then:

    - the listing's reserve and ratio are applied to the base first,
      ``allocated = floor(ratio × (base − reserve))`` (SPEC §11.7). With the defaults
      (reserve 0, ratio 1) this is the base itself, so a listing without those settings
      gets exactly the SPEC §3 steps. Applying them first means the guards below see
      what this listing would really offer: a ratio of 1/2 on a total of 6 offers 3,
      and a minimum stock of 3 then guards it;
    - step 2: minimum stock set and ``allocated <= min_stock`` → 0 (oversell guard, seed 004);
    - step 3: otherwise, maximum stock set and ``allocated >= max_stock`` → ``max_stock``
      (seed 004). The two are exclusive: a value the guard set to 0 is never raised
      again by the cap;
    - step 4: clamp to the channel's range (seed 003: negative → 0, above 999,999 → 999,999);
    - step 5: push only when the result differs from ``last_confirmed``, the listing's
      last confirmed channel stock; ``None`` (never confirmed, or unknown) always pushes.
    """
    allocated = policy.allocate(base)
    quantity = allocated
    if policy.min_stock is not None and allocated <= policy.min_stock:
        quantity = 0
    elif policy.max_stock is not None and allocated >= policy.max_stock:
        quantity = policy.max_stock
    clamped = channel_range.clamp(quantity)
    push = last_confirmed is None or clamped != last_confirmed
    return PushDecision(quantity=clamped, push=push)


def fetched_smaregi_stock(stock_amount: int | str | None, *, product_found: bool) -> int:
    """Return the Smaregi stock to store after a stock read (seed 003 "在庫取得").

    Seed 003: when Smaregi has no product with the linked id, the listing is set to 0
    (an unknown id is a link problem for the merchant, not something to retry, SPEC
    §11.8); when the stock value is empty, it is 0 too. Smaregi sends numbers as
    strings (``"-3"``); the value is not clamped here, that is the push's job.
    Other read errors must not reach this function: they leave the stored stock as it is.
    """
    if not product_found:
        return 0
    if stock_amount is None or (isinstance(stock_amount, str) and not stock_amount.strip()):
        return 0
    return int(stock_amount)


def low_stock_crossed(before: int, after: int, threshold: int | None) -> bool:
    """Whether a change took total stock to or below ``threshold`` from above it (seed 004
    在庫数通知): once per crossing, so a product lying low is not announced by every later order;
    it is again once it has risen above the threshold and falls to it. No threshold: never."""
    return threshold is not None and before > threshold >= after
