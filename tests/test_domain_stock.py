"""Stock arithmetic and the push value of a listing (SPEC §3, §11.7; seeds 003 and 004)."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stocklink.domain.stock import (
    CART_RANGE,
    RAKUTEN_RANGE,
    ChannelRange,
    QuantityPolicy,
    compute_push_quantity,
    fetched_smaregi_stock,
    set_availability,
    total_stock,
)

FAST = settings(max_examples=60, deadline=None, database=None)

SMAREGI_STOCK = st.integers(-999_999_999, 999_999_999)


@st.composite
def policies(draw):
    min_stock = draw(st.none() | st.integers(0, 1_000))
    max_stock = draw(st.none() | st.integers(min_stock or 0, 2_000_000))
    reserve = draw(st.integers(0, 100))
    ratio = draw(st.fractions(min_value=0, max_value=1, max_denominator=100))
    return QuantityPolicy(min_stock=min_stock, max_stock=max_stock, reserve=reserve, ratio=ratio)


CHANNEL_RANGES = st.sampled_from([CART_RANGE, RAKUTEN_RANGE]) | st.builds(
    ChannelRange, st.integers(-1_000, 0), st.integers(0, 2_000_000)
)


@pytest.mark.parametrize(
    ("smaregi_stock", "reserved", "expected"),
    [
        pytest.param(10, 0, 10, id="nothing-reserved"),
        pytest.param(10, 3, 7, id="web-order-awaiting-registration"),
        pytest.param(2, 5, -3, id="reservations-above-stock"),
        pytest.param(-5, 2, -7, id="negative-smaregi-stock"),
    ],
)
def test_total_stock(smaregi_stock, reserved, expected):
    """Total stock is Smaregi stock minus reserved web orders, and may be negative."""
    assert total_stock(smaregi_stock, reserved) == expected


def test_total_stock_rejects_negative_reservation():
    """A negative reservation is a broken ledger, not extra stock."""
    with pytest.raises(ValueError, match="reserved"):
        total_stock(10, -1)


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        pytest.param([(7, 1)], 7, id="one-component"),
        pytest.param([(10, 2), (9, 3)], 3, id="scarcest-component-wins"),
        pytest.param([(10, 3), (100, 1)], 3, id="remainder-dropped"),
        pytest.param([(1, 2), (50, 1)], 0, id="not-enough-for-one-set"),
        pytest.param([(0, 1), (50, 1)], 0, id="component-sold-out"),
        pytest.param([(-4, 1), (10, 1)], 0, id="negative-component-means-no-sets"),
        pytest.param([(-1, 2)], 0, id="negative-floor-division-is-not-minus-one"),
    ],
)
def test_set_availability(components, expected):
    """A set sells as many as its scarcest component allows, never fewer than 0."""
    assert set_availability(components) == expected


@pytest.mark.parametrize(
    "components",
    [
        pytest.param([], id="no-components"),
        pytest.param([(5, 0)], id="zero-quantity"),
        pytest.param([(5, 1), (5, -1)], id="negative-quantity"),
    ],
)
def test_set_availability_rejects_bad_sets(components):
    """A set with no components or a non-positive quantity is a data error."""
    with pytest.raises(ValueError):
        set_availability(components)


def test_set_availability_accepts_a_generator():
    """Components may be any iterable, consumed once."""
    assert set_availability((total, 2) for total in (8, 6)) == 3


@pytest.mark.parametrize(
    ("channel_range", "value", "expected"),
    [
        pytest.param(CART_RANGE, -1, 0, id="seed003-negative-to-zero"),
        pytest.param(CART_RANGE, -999_999_999, 0, id="seed003-smaregi-minimum"),
        pytest.param(CART_RANGE, 0, 0, id="zero-kept"),
        pytest.param(CART_RANGE, 999_999, 999_999, id="seed003-upper-bound-kept"),
        pytest.param(CART_RANGE, 1_000_000, 999_999, id="seed003-above-to-999999"),
        pytest.param(CART_RANGE, 999_999_999, 999_999, id="seed003-smaregi-maximum"),
        pytest.param(RAKUTEN_RANGE, 99_999, 99_999, id="rakuten-upper-bound-kept"),
        pytest.param(RAKUTEN_RANGE, 100_000, 99_999, id="rakuten-above-to-99999"),
        pytest.param(ChannelRange(-10, 10), -5, -5, id="channel-allowing-negative"),
    ],
)
def test_channel_range_clamp(channel_range, value, expected):
    """Values outside a channel's range are moved to its nearest end (seed 003)."""
    assert channel_range.clamp(value) == expected


def test_channel_range_defaults_to_the_seed003_cart_range():
    """ChannelRange() is 0..999,999, the cart range of seed 003."""
    assert ChannelRange() == CART_RANGE == ChannelRange(0, 999_999)
    assert RAKUTEN_RANGE == ChannelRange(0, 99_999)


@pytest.mark.parametrize(
    ("minimum", "maximum"),
    [
        pytest.param(1, 10, id="cannot-show-sold-out"),
        pytest.param(-10, -1, id="all-negative"),
        pytest.param(5, 3, id="inverted"),
    ],
)
def test_channel_range_must_contain_zero(minimum, maximum):
    """A channel range that cannot show 0 (sold out) is refused."""
    with pytest.raises(ValueError):
        ChannelRange(minimum, maximum)


@pytest.mark.parametrize(
    ("base", "policy_kwargs", "channel_range", "quantity"),
    [
        pytest.param(5, {}, CART_RANGE, 5, id="total-as-is"),
        pytest.param(-3, {}, CART_RANGE, 0, id="seed003-negative-to-0"),
        pytest.param(1_000_000, {}, CART_RANGE, 999_999, id="seed003-above-to-999999"),
        pytest.param(999_999_999, {}, RAKUTEN_RANGE, 99_999, id="rakuten-range"),
        pytest.param(2, {"min_stock": 3}, CART_RANGE, 0, id="seed004-below-min"),
        pytest.param(3, {"min_stock": 3}, CART_RANGE, 0, id="seed004-at-min"),
        pytest.param(4, {"min_stock": 3}, CART_RANGE, 4, id="seed004-above-min"),
        pytest.param(0, {"min_stock": 0}, CART_RANGE, 0, id="min-zero-at-zero"),
        pytest.param(-8, {"min_stock": 0}, CART_RANGE, 0, id="negative-under-min"),
        pytest.param(9, {"max_stock": 10}, CART_RANGE, 9, id="seed004-below-max"),
        pytest.param(10, {"max_stock": 10}, CART_RANGE, 10, id="seed004-at-max"),
        pytest.param(50, {"max_stock": 10}, CART_RANGE, 10, id="seed004-above-max"),
        pytest.param(5, {"max_stock": 0}, CART_RANGE, 0, id="max-zero"),
        pytest.param(5, {"min_stock": 5, "max_stock": 5}, CART_RANGE, 0, id="guard-beats-cap"),
        pytest.param(6, {"min_stock": 5, "max_stock": 5}, CART_RANGE, 5, id="min-equals-max"),
        pytest.param(
            500_000, {"max_stock": 200_000}, RAKUTEN_RANGE, 99_999, id="cap-above-range"
        ),
        pytest.param(10, {"reserve": 2}, CART_RANGE, 8, id="reserve"),
        pytest.param(3, {"reserve": 5}, CART_RANGE, 0, id="reserve-above-total"),
        pytest.param(7, {"ratio": Fraction(1, 2)}, CART_RANGE, 3, id="ratio-floor"),
        pytest.param(10, {"ratio": Decimal("0.7")}, CART_RANGE, 7, id="ratio-decimal-exact"),
        pytest.param(8, {"ratio": 0}, CART_RANGE, 0, id="ratio-zero"),
        pytest.param(
            12, {"reserve": 2, "ratio": "1/2"}, CART_RANGE, 5, id="reserve-then-ratio"
        ),
        pytest.param(
            6, {"min_stock": 3, "ratio": "1/2"}, CART_RANGE, 0, id="min-guards-the-share"
        ),
        pytest.param(
            100, {"max_stock": 30, "ratio": "1/2"}, CART_RANGE, 30, id="max-caps-the-share"
        ),
    ],
)
def test_compute_push_quantity(base, policy_kwargs, channel_range, quantity):
    """Reserve and ratio, then min guard, max cap and clamp decide the pushed value, in SPEC §3 order."""
    decision = compute_push_quantity(
        base, QuantityPolicy(**policy_kwargs), channel_range, last_confirmed=None
    )
    assert decision.quantity == quantity


@pytest.mark.parametrize(
    ("base", "last_confirmed", "quantity", "push"),
    [
        pytest.param(5, None, 5, True, id="never-confirmed-pushes"),
        pytest.param(5, 5, 5, False, id="unchanged-not-pushed"),
        pytest.param(5, 4, 5, True, id="changed-pushed"),
        pytest.param(-3, 0, 0, False, id="still-zero-after-clamp-not-pushed"),
        pytest.param(2_000_000, 999_999, 999_999, False, id="still-at-ceiling-not-pushed"),
    ],
)
def test_push_only_when_different_from_last_confirmed(base, last_confirmed, quantity, push):
    """A value equal to the listing's last confirmed channel stock is not pushed again (SPEC §3 step 5)."""
    decision = compute_push_quantity(base, QuantityPolicy(), CART_RANGE, last_confirmed)
    assert (decision.quantity, decision.push) == (quantity, push)


@pytest.mark.parametrize(
    "ratio",
    [
        pytest.param(Fraction(7, 10), id="fraction"),
        pytest.param(Decimal("0.7"), id="decimal"),
        pytest.param("0.7", id="decimal-string"),
        pytest.param("7/10", id="fraction-string"),
    ],
)
def test_quantity_policy_keeps_ratio_exact(ratio):
    """Every accepted form of a ratio becomes the same exact Fraction."""
    assert QuantityPolicy(ratio=ratio).ratio == Fraction(7, 10)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"ratio": 0.7}, TypeError, id="float-ratio"),
        pytest.param({"ratio": Fraction(3, 2)}, ValueError, id="ratio-above-one"),
        pytest.param({"ratio": -1}, ValueError, id="negative-ratio"),
        pytest.param({"reserve": -1}, ValueError, id="negative-reserve"),
        pytest.param({"min_stock": -1}, ValueError, id="negative-min"),
        pytest.param({"max_stock": -1}, ValueError, id="negative-max"),
        pytest.param({"min_stock": 10, "max_stock": 3}, ValueError, id="min-above-max"),
    ],
)
def test_quantity_policy_rejects_nonsense(kwargs, error):
    """Settings that cannot describe a listing are refused when the policy is built."""
    with pytest.raises(error):
        QuantityPolicy(**kwargs)


@pytest.mark.parametrize(
    ("stock_amount", "product_found", "expected"),
    [
        pytest.param("12", False, 0, id="seed003-unknown-product-id-to-0"),
        pytest.param(None, True, 0, id="seed003-empty-value-to-0"),
        pytest.param("  ", True, 0, id="blank-string-to-0"),
        pytest.param("-3", True, -3, id="negative-kept-until-push"),
        pytest.param("1000000", True, 1_000_000, id="large-kept-until-push"),
        pytest.param(5, True, 5, id="integer-value"),
    ],
)
def test_fetched_smaregi_stock(stock_amount, product_found, expected):
    """A stock read stores 0 for an unknown Smaregi id or an empty value, else the value unclamped."""
    assert fetched_smaregi_stock(stock_amount, product_found=product_found) == expected


@FAST
@given(base=SMAREGI_STOCK, policy=policies(), channel_range=CHANNEL_RANGES)
def test_push_quantity_is_inside_the_channel_range(base, policy, channel_range):
    """Whatever the stock and settings, the pushed value is one the channel accepts."""
    quantity = compute_push_quantity(base, policy, channel_range, None).quantity
    assert channel_range.minimum <= quantity <= channel_range.maximum


@FAST
@given(base=SMAREGI_STOCK, policy=policies(), channel_range=CHANNEL_RANGES)
def test_push_quantity_never_above_max_stock(base, policy, channel_range):
    """A listing with a maximum stock never shows more than it."""
    quantity = compute_push_quantity(base, policy, channel_range, None).quantity
    if policy.max_stock is not None:
        assert quantity <= policy.max_stock


@FAST
@given(base=SMAREGI_STOCK, min_stock=st.integers(0, 1_000), channel_range=CHANNEL_RANGES)
def test_push_quantity_zero_at_or_below_min_stock(base, min_stock, channel_range):
    """With no reserve or ratio, any total at or below the minimum stock shows 0 (seed 004)."""
    decision = compute_push_quantity(base, QuantityPolicy(min_stock=min_stock), channel_range, None)
    if base <= min_stock:
        assert decision.quantity == 0
    else:
        assert decision.quantity == channel_range.clamp(base)


@FAST
@given(base=SMAREGI_STOCK, policy=policies(), channel_range=CHANNEL_RANGES)
def test_push_quantity_zero_whenever_allocated_share_at_or_below_min(base, policy, channel_range):
    """With reserve and ratio, the oversell guard applies to the listing's allocated share."""
    quantity = compute_push_quantity(base, policy, channel_range, None).quantity
    if policy.min_stock is not None and policy.allocate(base) <= policy.min_stock:
        assert quantity == 0


@FAST
@given(base=SMAREGI_STOCK, policy=policies(), channel_range=CHANNEL_RANGES)
def test_push_quantity_never_offers_more_than_is_there(base, policy, channel_range):
    """The pushed value never exceeds the total less the reserve (or 0): no oversell by arithmetic."""
    quantity = compute_push_quantity(base, policy, channel_range, None).quantity
    assert quantity <= max(0, base - policy.reserve)


@FAST
@given(
    bases=st.tuples(SMAREGI_STOCK, SMAREGI_STOCK).map(sorted),
    policy=policies(),
    channel_range=CHANNEL_RANGES,
)
def test_push_quantity_is_monotonic_in_stock(bases, policy, channel_range):
    """More stock never shows less on a listing."""
    lower, higher = (compute_push_quantity(base, policy, channel_range, None).quantity for base in bases)
    assert lower <= higher


@FAST
@given(
    base=SMAREGI_STOCK,
    policy=policies(),
    channel_range=CHANNEL_RANGES,
    last_confirmed=st.none() | st.integers(-10, 2_000_000),
)
def test_push_is_false_iff_quantity_equals_last_confirmed(base, policy, channel_range, last_confirmed):
    """push is False exactly when the value is the last confirmed one; unknown always pushes."""
    decision = compute_push_quantity(base, policy, channel_range, last_confirmed)
    assert decision.push is (last_confirmed is None or decision.quantity != last_confirmed)


@FAST
@given(base=SMAREGI_STOCK, policy=policies(), channel_range=CHANNEL_RANGES)
def test_pushing_the_decision_settles_it(base, policy, channel_range):
    """Once the pushed value is confirmed, the same facts decide not to push again."""
    first = compute_push_quantity(base, policy, channel_range, None)
    again = compute_push_quantity(base, policy, channel_range, first.quantity)
    assert (again.quantity, again.push) == (first.quantity, False)


@FAST
@given(st.lists(st.tuples(st.integers(-1_000, 10_000), st.integers(1, 20)), min_size=1, max_size=6))
def test_set_availability_is_the_largest_count_every_component_covers(components):
    """Set availability is ≤ every component's total // qty, ≥ 0, and one more set would not fit."""
    sets = set_availability(components)
    assert sets >= 0
    assert all(sets <= max(0, total // quantity) for total, quantity in components)
    assert any(total < (sets + 1) * quantity for total, quantity in components)


def test_low_stock_is_announced_once_per_crossing():
    from stocklink.domain.stock import low_stock_crossed
    assert low_stock_crossed(5, 3, 3) and low_stock_crossed(4, 0, 2)
    assert not low_stock_crossed(3, 2, 3)  # already at the threshold: no second mail
    assert not low_stock_crossed(6, 4, 3) and not low_stock_crossed(2, 5, 3)  # above, or rising
    assert not low_stock_crossed(5, 0, None)
    assert low_stock_crossed(1, 0, 0)  # threshold 0: sold out
