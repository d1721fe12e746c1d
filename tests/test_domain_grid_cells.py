"""Pure rules of the grid's cells: what a typed setting may be, and CSV cells made harmless."""
from __future__ import annotations

import pytest

from stocklink.domain.csv_cells import csv_bytes, neutralise_cell
from stocklink.domain.listing_settings import Refusal, check_listing_setting, whole_number


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"), ("+81", "'+81"), ("-3", "'-3"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("Tシャツ", "Tシャツ"), ("a=b", "a=b"), ("", ""), (None, ""), (-3, "-3"), (12, "12"), (True, "1"),
])
def test_neutralise_cell(value, expected):
    """Text a spreadsheet would run as a formula gets a leading '; numbers we write stay numbers."""
    assert neutralise_cell(value) == expected


def test_csv_bytes_in_both_encodings():
    """UTF-8 starts with one BOM; CP932 replaces what it cannot hold instead of failing."""
    rows = [["名称", "在庫"], ["=cmd", -1], ["🍣寿司", 2]]
    utf8 = b"".join(csv_bytes(rows, "utf-8"))
    assert utf8.startswith(b"\xef\xbb\xbf") and utf8.count(b"\xef\xbb\xbf") == 1
    assert utf8.decode("utf-8-sig") == "名称,在庫\r\n'=cmd,-1\r\n🍣寿司,2\r\n"
    assert b"".join(csv_bytes(rows, "cp932")).decode("cp932") == "名称,在庫\r\n'=cmd,-1\r\n?寿司,2\r\n"
    with pytest.raises(ValueError):
        list(csv_bytes(rows, "latin-1"))


@pytest.mark.parametrize(("raw", "expected"), [("12", 12), ("１２", 12), (" 1,000 ", 1000), ("", None), (None, None)])
def test_whole_number(raw, expected):
    assert whole_number(raw) == expected


@pytest.mark.parametrize("raw", ["-1", "1.5", "abc", "1e3", "1000000000", "٣"])
def test_whole_number_refuses(raw):
    with pytest.raises(Refusal) as caught:
        whole_number(raw)
    assert caught.value.code == "not_whole"


@pytest.mark.parametrize(("name", "raw", "current", "expected"), [
    ("sync", "on", (None, None), True), ("sync", "off", (None, None), False), ("sync", "", (None, None), False),
    ("min_stock", "", (3, None), None), ("min_stock", "5", (None, 5), 5), ("max_stock", "2", (2, None), 2),
    ("reserve", "", (None, None), 0), ("ratio_percent", "", (None, None), 100), ("ratio_percent", "0", (None, None), 0),
])
def test_check_listing_setting(name, raw, current, expected):
    assert check_listing_setting(name, raw, min_stock=current[0], max_stock=current[1]) == expected


@pytest.mark.parametrize(("name", "raw", "current", "code"), [
    ("min_stock", "6", (None, 5), "min_above_max"), ("max_stock", "1", (2, None), "max_below_min"),
    ("ratio_percent", "101", (None, None), "ratio_range"), ("reserve", "-1", (None, None), "not_whole"),
])
def test_check_listing_setting_refuses(name, raw, current, code):
    with pytest.raises(Refusal) as caught:
        check_listing_setting(name, raw, min_stock=current[0], max_stock=current[1])
    assert caught.value.code == code
