"""Clean-up of text that merchants paste or import: secrets and product codes."""

import unicodedata

# Cc: control characters; Cf: invisible format characters (zero-width space U+200B,
# joiners U+200C/U+200D, word joiner U+2060, BOM U+FEFF, soft hyphen, bidi marks).
# None of them can be part of a token or a code, and all of them survive a copy from a
# web page or an Excel cell without being seen.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})


def _is_invisible(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def clean_pasted_secret(value: str) -> str:
    """Return a pasted token, key or customer code with every invisible character removed.

    Seed 001 warns that a pasted Smaregi access token may carry spaces and line breaks
    before or after it, depending on what was selected; a token copied from a wrapped
    e-mail or PDF also carries line breaks *inside* it. Secrets never contain whitespace,
    so all of it goes: ASCII spaces, tabs and line breaks, the full-width space U+3000
    (typed by a Japanese IME), no-break spaces, and zero-width / format characters.
    Visible characters are kept exactly as they are (no case or width folding: changing
    a character of a secret would only turn one error into a stranger one).
    """
    return "".join(char for char in value if not _is_invisible(char))


def normalise_code(code: object) -> str | None:
    """Return a product code or listing identifier stripped at both ends, or ``None`` if empty.

    Used on both sides of a link (Smaregi 商品コード, a channel's 型番 / SKU) so that
    ``" A-1 "`` from a CSV and ``"A-1"`` from an API are the same key, and a blank cell
    means "no code" (an unlinkable product, seed 000) rather than the code ``""``. Leading
    and trailing whitespace (including U+3000) and invisible characters (a BOM stuck to
    the first cell of a CSV) are removed; the inside of the code is left alone. ``None``
    stays ``None``; other values (an integer code read from a spreadsheet) are converted
    with ``str``.
    """
    if code is None:
        return None
    text = str(code)
    start, end = 0, len(text)
    while start < end and _is_invisible(text[start]):
        start += 1
    while end > start and _is_invisible(text[end - 1]):
        end -= 1
    return text[start:end] or None


def variation_label(color: str | None, size: str | None) -> str | None:
    """How a Smaregi variation is shown: ``"ホワイト / S"``; ``None`` when neither is set."""
    return " / ".join(x for x in (color, size) if x) or None


def search_key(text: object) -> str:
    """Return ``text`` folded for searching: what a person sees as the same matches (seed 004).

    NFKC turns full-width letters and digits into half-width (``ｔ`` → ``t``) and half-width
    katakana into full-width (``ﾘﾈﾝ`` → ``リネン``), then case is folded, and runs of
    whitespace (U+3000 included) become one space. Both the stored search text and the
    merchant's keyword go through this, so ``ｔシャツ`` finds ``Tシャツ``. ``None`` is ``""``.
    """
    if text is None:
        return ""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    return " ".join("".join(" " if _is_invisible(char) else char for char in folded).split())


def search_words(keyword: str | None) -> list[str]:
    """Split a grid keyword into folded words: commas (``,`` ``、`` ``，``) mean AND (seed 004)."""
    if not keyword:
        return []
    unified = unicodedata.normalize("NFKC", keyword).replace("、", ",")
    return [word for word in (search_key(part) for part in unified.split(",")) if word]
