"""Linkability and the three modes for unlinkable products (seed 000, seed 003, SPEC §4)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stocklink.domain.linking import (
    UnlinkableDecision,
    UnlinkableMode,
    classify_notification_products,
    decide_unlinkable,
    is_linkable,
    is_stock_managed,
)

FAST = settings(max_examples=60, deadline=None, database=None)

# Seed 000: a 620-yen sale of A ×2 at 100 yen, B ×3 at 90 yen and C ×1 at 150 yen,
# where B cannot be linked.
SALE = [("A", 2, 100), ("B", 3, 90), ("C", 1, 150)]
LINKED = {"A", "C"}

PRODUCTS = st.sampled_from("ABCDEFGH")


@pytest.mark.parametrize(
    ("product_code", "listing_identifier", "store_only", "expected"),
    [
        pytest.param("A-1", "A-1", False, True, id="both-codes-set"),
        pytest.param(" A-1 ", "a1-model", False, True, id="codes-need-not-match"),
        pytest.param(None, "A-1", False, False, id="no-smaregi-code"),
        pytest.param("A-1", None, False, False, id="no-channel-model-number"),
        pytest.param("   ", "A-1", False, False, id="blank-smaregi-code"),
        pytest.param("A-1", "\u3000", False, False, id="full-width-blank-model-number"),
        pytest.param("A-1", "A-1", True, False, id="store-only-product"),
    ],
)
def test_is_linkable(product_code, listing_identifier, store_only, expected):
    """A product links only with a code on both sides and when it is not sold in the shop alone (seed 000)."""
    assert is_linkable(product_code, listing_identifier, store_only) is expected


@pytest.mark.parametrize(
    ("division", "expected"),
    [
        pytest.param("0", True, id="managed"),
        pytest.param("1", False, id="seed003-not-managed"),
        pytest.param(0, True, id="managed-int"),
        pytest.param(1, False, id="not-managed-int"),
        pytest.param(None, True, id="missing-means-default-managed"),
    ],
)
def test_is_stock_managed(division, expected):
    """stockControlDivision 1 (在庫管理対象外) is never synced (seed 003)."""
    assert is_stock_managed(division) is expected


@pytest.mark.parametrize(
    ("product_ids", "linked", "excluded", "expected"),
    [
        pytest.param(["A", "B", "C"], LINKED, set(), (["A", "C"], ["B"], []), id="seed000-620-yen-sale"),
        pytest.param(["A", "B", "C"], LINKED, {"B"}, (["A", "C"], [], ["B"]), id="excluded-not-unlinkable"),
        pytest.param(["C", "B", "A"], LINKED, set(), (["C", "A"], ["B"], []), id="notification-order-kept"),
        pytest.param(["A", "A", "B", "B"], LINKED, set(), (["A"], ["B"], []), id="duplicates-once"),
        pytest.param(["A", "C"], LINKED, {"A"}, (["C"], [], ["A"]), id="exclusion-beats-link"),
        pytest.param([], LINKED, set(), ([], [], []), id="empty-notification"),
    ],
)
def test_classify_notification_products(product_ids, linked, excluded, expected):
    """A notification's products split into linkable, unlinkable and excluded, in their order."""
    result = classify_notification_products(product_ids, linked, excluded)
    assert tuple(result) == expected
    assert (result.linkable, result.unlinkable, result.excluded) == expected


@pytest.mark.parametrize(
    ("mode", "expected", "synced_yen"),
    [
        pytest.param(
            "skip",
            UnlinkableDecision(apply=("A", "C"), queue=("B",), exclude=(), mail=("B",), reject=False),
            350,
            id="skip-syncs-A-C-queues-and-mails-B",
        ),
        pytest.param(
            "auto_exclude",
            UnlinkableDecision(apply=("A", "C"), queue=(), exclude=("B",), mail=("B",), reject=False),
            350,
            id="auto-exclude-syncs-A-C-excludes-and-mails-B",
        ),
        pytest.param(
            "abort",
            UnlinkableDecision(apply=(), queue=("B",), exclude=(), mail=("B",), reject=True),
            0,
            id="abort-syncs-nothing-rejects-naming-B",
        ),
    ],
)
def test_seed000_620_yen_sale_in_each_mode(mode, expected, synced_yen):
    """Seed 000's sale: A and C are synced unless the mode aborts; what happens to B depends on the mode."""
    products = [code for code, _, _ in SALE]
    linkable, unlinkable, _ = classify_notification_products(products, LINKED, set())
    decision = decide_unlinkable(mode, linkable, unlinkable)
    assert decision == expected
    assert sum(quantity * price for code, quantity, price in SALE if code in decision.apply) == synced_yen


def test_skip_mails_every_time_but_queues_once():
    """In skip mode a product already in the queue is not queued again, yet every skip is mailed."""
    decision = decide_unlinkable("skip", ["A", "C"], ["B"], already_queued={"B"})
    assert (decision.apply, decision.queue, decision.mail) == (("A", "C"), (), ("B",))


def test_auto_exclude_mails_only_the_first_time():
    """Once auto-exclude has listed B, the next sale of B is silent: it classifies as excluded."""
    first = decide_unlinkable("auto_exclude", ["A", "C"], ["B"])
    exclusions = set(first.exclude)
    linkable, unlinkable, excluded = classify_notification_products(["A", "B", "C"], LINKED, exclusions)
    second = decide_unlinkable("auto_exclude", linkable, unlinkable)
    assert first.mail == ("B",)
    assert excluded == ["B"]
    assert second == UnlinkableDecision(apply=("A", "C"), queue=(), exclude=(), mail=(), reject=False)


def test_auto_exclude_does_not_re_add_an_excluded_product():
    """An unlinkable product the caller reports as already excluded is neither added nor mailed."""
    decision = decide_unlinkable("auto_exclude", ["A"], ["B", "D"], already_excluded={"B"})
    assert (decision.exclude, decision.mail) == (("D",), ("D",))


@pytest.mark.parametrize(
    ("linked", "excluded"),
    [
        pytest.param({"A", "B", "C"}, set(), id="merchant-linked-B"),
        pytest.param(LINKED, {"B"}, id="merchant-excluded-B"),
    ],
)
def test_abort_resend_after_merchant_decision_is_processed_in_full(linked, excluded):
    """After the merchant links or excludes B, Smaregi's resend is applied without rejection."""
    linkable, unlinkable, _ = classify_notification_products(["A", "B", "C"], linked, excluded)
    decision = decide_unlinkable("abort", linkable, unlinkable)
    assert decision.reject is False
    assert set(decision.apply) == linked - excluded


def test_unknown_mode_is_refused():
    """A mode that is not one of the three is a configuration error."""
    with pytest.raises(ValueError):
        decide_unlinkable("ignore", ["A"], ["B"])


@FAST
@given(
    products=st.lists(PRODUCTS, max_size=12),
    linked=st.sets(PRODUCTS),
    excluded=st.sets(PRODUCTS),
)
def test_classification_partitions_the_notification_in_order(products, linked, excluded):
    """Every product lands in exactly one list, once, in notification order."""
    result = classify_notification_products(products, linked, excluded)
    unique = list(dict.fromkeys(products))
    assert sorted(result.linkable + result.unlinkable + result.excluded) == sorted(unique)
    for part in result:
        assert part == [p for p in unique if p in part]
    assert set(result.excluded) == set(unique) & excluded
    assert set(result.linkable) == (set(unique) & linked) - excluded


@FAST
@given(
    mode=st.sampled_from(list(UnlinkableMode)),
    products=st.lists(PRODUCTS, max_size=12),
    linked=st.sets(PRODUCTS),
    excluded=st.sets(PRODUCTS),
    queued=st.sets(PRODUCTS),
)
def test_unlinkable_decision_invariants(mode, products, linked, excluded, queued):
    """Excluded products are silent, unlinkable ones are never synced, and only abort rejects."""
    linkable, unlinkable, _ = classify_notification_products(products, linked, excluded)
    decision = decide_unlinkable(mode, linkable, unlinkable, already_queued=queued, already_excluded=excluded)
    touched = set(decision.apply + decision.queue + decision.exclude + decision.mail)
    assert not touched & excluded
    assert not set(decision.apply) & set(unlinkable)
    assert not set(decision.queue) & queued
    assert decision.reject is (mode == "abort" and bool(unlinkable))
    if decision.reject:
        assert decision.apply == ()
        assert decision.mail == tuple(unlinkable)
    else:
        assert decision.apply == tuple(linkable)
    if mode == "skip":
        assert decision.mail == tuple(unlinkable)
    if mode == "auto_exclude":
        assert decision.exclude == decision.mail == tuple(unlinkable)
        assert decision.queue == ()
