"""Clean-up of pasted secrets (seed 001) and of product codes."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stocklink.domain.text import clean_pasted_secret, normalise_code, search_key, search_words, variation_label

FAST = settings(max_examples=60, deadline=None, database=None)

# Characters a token is made of (hex, base64 / base64url, JWT).
TOKEN = st.text(alphabet="abcdefXYZ0123456789-_.~+/=", min_size=1, max_size=40)
INVISIBLE = st.sampled_from(
    [" ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\u200b", "\u2060", "\ufeff", "\u200d"]
)


@pytest.mark.parametrize(
    ("pasted", "expected"),
    [
        pytest.param("abc123", "abc123", id="clean-token-unchanged"),
        pytest.param("  abc123  ", "abc123", id="seed001-spaces-around"),
        pytest.param("abc123\n", "abc123", id="seed001-trailing-line-break"),
        pytest.param("\r\nabc123\r\n", "abc123", id="seed001-crlf-around"),
        pytest.param("abc\n123", "abc123", id="line-break-from-wrapping"),
        pytest.param("abc\t 123", "abc123", id="tab-and-space-inside"),
        pytest.param("\u3000abc123\u3000", "abc123", id="full-width-space"),
        pytest.param("\u00a0abc123", "abc123", id="no-break-space"),
        pytest.param("abc\u200b123\ufeff", "abc123", id="zero-width-space-and-bom"),
        pytest.param("Abc.Def-_~+/=", "Abc.Def-_~+/=", id="visible-punctuation-kept"),
        pytest.param(" \n\u3000", "", id="only-whitespace"),
        pytest.param("", "", id="empty"),
    ],
)
def test_clean_pasted_secret(pasted, expected):
    """Every space, line break and invisible character is removed from a pasted secret (seed 001)."""
    assert clean_pasted_secret(pasted) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param("A-1", "A-1", id="clean"),
        pytest.param(" A-1 ", "A-1", id="spaces-around"),
        pytest.param("\u3000A-1\u3000", "A-1", id="full-width-spaces-around"),
        pytest.param("\ufeffA-1", "A-1", id="csv-bom-stuck-to-first-cell"),
        pytest.param("A 1", "A 1", id="inside-kept"),
        pytest.param("a-1", "a-1", id="case-kept"),
        pytest.param("", None, id="empty-is-none"),
        pytest.param("  \t\n", None, id="blank-is-none"),
        pytest.param(None, None, id="none-is-none"),
        pytest.param(4_901_234, "4901234", id="integer-from-spreadsheet"),
    ],
)
def test_normalise_code(code, expected):
    """Codes are stripped at both ends; a blank code is no code."""
    assert normalise_code(code) == expected


@FAST
@given(st.text(max_size=60))
def test_cleaned_secret_has_no_whitespace_and_is_stable(value):
    """A cleaned secret contains no whitespace, and cleaning it again changes nothing."""
    cleaned = clean_pasted_secret(value)
    assert not any(char.isspace() for char in cleaned)
    assert clean_pasted_secret(cleaned) == cleaned


@FAST
@given(token=TOKEN, data=st.data())
def test_token_survives_any_invisible_characters_around_and_inside(token, data):
    """A token pasted with whitespace or zero-width characters anywhere comes back exactly."""
    pieces = []
    for char in token:
        pieces.append(data.draw(st.lists(INVISIBLE, max_size=2)))
        pieces.append([char])
    pieces.append(data.draw(st.lists(INVISIBLE, max_size=3)))
    pasted = "".join("".join(piece) for piece in pieces)
    assert clean_pasted_secret(pasted) == token


@FAST
@given(st.none() | st.text(max_size=30))
def test_normalised_code_is_stable_and_trimmed(code):
    """Normalising twice equals normalising once, and the result never starts or ends with a space."""
    normalised = normalise_code(code)
    assert normalise_code(normalised) == normalised
    if normalised is not None:
        assert normalised
        assert normalised == normalised.strip()


@pytest.mark.parametrize("color, size, expected", [
    ("ホワイト", "S", "ホワイト / S"), (None, "S", "S"), ("ホワイト", None, "ホワイト"),
    (None, None, None), ("", "", None),
], ids=["both", "size only", "colour only", "neither", "blank"])
def test_variation_label(color, size, expected):
    """Colour then size, joined with " / "; nothing set is None."""
    assert variation_label(color, size) == expected


# --- search_key / search_words: the grid's keyword (seed 004) ---

@pytest.mark.parametrize("typed, shown", [
    ("ｔシャツ", "Tシャツ ホワイト / S"),
    ("ﾘﾈﾝ", "リネンシャツ"),
    ("tシャツ", "Ｔシャツ"),
    ("ａｂｃ１２３", "ABC123"),
    ("ホワイト", "Tシャツ\u3000ホワイト"),
])
def test_search_key_matches_what_a_person_sees_as_the_same(typed, shown):
    assert search_key(typed) in search_key(shown)


def test_search_key_collapses_whitespace_and_treats_none_as_empty():
    assert search_key("  Tシャツ\u3000\u3000白 \t ") == "tシャツ 白"
    assert search_key(None) == ""
    assert search_key(123) == "123"


def test_search_words_splits_on_every_kind_of_comma_and_drops_blanks():
    assert search_words("Tシャツ,ホワイト") == ["tシャツ", "ホワイト"]
    assert search_words("Ｔシャツ、ﾎﾜｲﾄ，S ,, ") == ["tシャツ", "ホワイト", "s"]
    assert search_words("") == [] and search_words(None) == [] and search_words(" , ") == []
