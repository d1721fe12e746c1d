"""The link rule (紐づけ条件, seed 002): listings matched to Smaregi products by code."""
import pytest

from stocklink.domain.matching import (
    CodeIndex,
    LinkProblem,
    Match,
    ProductKeys,
    claimed_twice,
    problem_of_link,
)

PRODUCTS = [
    ProductKeys(1, "TS-WH-S", second="8000001"),
    ProductKeys(2, "TS-WH-M", second="8000002"),
    ProductKeys(3, "DUP", second="8000003"),
    ProductKeys(4, "DUP", second="8000004"),
    ProductKeys(5, "WRAP01", second="8000005", stock_managed=False),
    ProductKeys(6, None, second="8000006"),
    ProductKeys(7, "8000001", second=None),  # a product whose code is another's second key
]


@pytest.mark.parametrize(("code", "expected"), [
    ("TS-WH-S", Match(1, None)),
    ("  TS-WH-M\u3000", Match(2, None)),          # a pasted code: trimmed, like the Smaregi side
    ("ts-wh-s", Match(None, LinkProblem.NO_MATCH)),  # the inside of a code is never folded
    ("NOPE", Match(None, LinkProblem.NO_MATCH)),
    ("", Match(None, LinkProblem.NO_CODE)),
    (None, Match(None, LinkProblem.NO_CODE)),
    ("DUP", Match(None, LinkProblem.SEVERAL_PRODUCTS)),
    ("WRAP01", Match(5, LinkProblem.NOT_STOCK_MANAGED)),
    ("8000006", Match(6, None)),                  # the second key when the first finds nothing
    ("8000001", Match(7, None)),                  # the primary key wins over the second
])
def test_match_by_code_then_second_key(code, expected):
    assert CodeIndex(PRODUCTS).match(code) == expected


def test_one_product_listed_under_both_keys_is_one_match():
    """A product found by its code and its second key is still one product, not several."""
    index = CodeIndex([ProductKeys(1, "A", second="A")])
    assert index.match("A") == Match(1, None)


def test_claimed_twice_names_every_listing_sharing_a_product():
    links = [(10, 1), (11, 1), (12, 2), (13, None), (14, None), (15, 3), (16, 3), (17, 3)]
    assert claimed_twice(links) == {10, 11, 15, 16, 17}
    assert claimed_twice([]) == set()


@pytest.mark.parametrize(("managed", "shared", "expected"), [
    (True, False, None),
    (False, False, LinkProblem.NOT_STOCK_MANAGED),
    (True, True, LinkProblem.MULTIPLE),
    (False, True, LinkProblem.MULTIPLE),
])
def test_problem_of_a_link(managed, shared, expected):
    assert problem_of_link(managed, shared) == expected
