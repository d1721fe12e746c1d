"""The product grid's filters, read from the query string (seed 004 ■検索, SPEC §8).

Every filter lives in the URL, so a search is bookmarkable and the Back button restores it.
:func:`parse_filters` is pure (a mapping in, a :class:`GridFilters` out): a value it cannot
use is dropped and named in :attr:`GridFilters.problems`, and the grid renders with the
other filters, never a 400 or a 500. :meth:`GridFilters.query` gives the arguments back
for page links and the CSV link, so they keep the search.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l

from stocklink.domain.text import search_words
from stocklink.web.params import MAX_ID

KINDS = ("all", "set")
LINKS = ("linked", "unlinked", "problem")
SYNCS = ("on", "off")
TOTAL_LIMIT = 999_999_999  # Smaregi's stock range (SPEC §3)
KEYWORD_LIMIT = 200
_WHOLE = re.compile(r"-?[0-9]{1,10}")
_ID = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class GridFilters:
    """What the merchant asked the grid for. ``channel_id`` is unchecked here: the view drops
    it (with a message) when no such channel exists."""

    kind: str = "all"
    channel_id: int | None = None
    keyword: str = ""
    total_min: int | None = None
    total_max: int | None = None
    total_exact: int | None = None
    link: str = ""
    sync: str = ""
    difference: bool = False
    page: int = 1
    problems: tuple = field(default=(), compare=False)

    @property
    def words(self) -> list[str]:
        """The keyword's folded words, each one a ``LIKE`` (commas mean AND)."""
        return search_words(self.keyword)

    @property
    def total_range(self) -> tuple[int | None, int | None]:
        if self.total_exact is not None:
            return self.total_exact, self.total_exact
        return self.total_min, self.total_max

    def query(self, **overrides) -> dict[str, str]:
        """The query-string arguments of these filters (defaults left out), with ``overrides``;
        an override of ``None`` removes that argument."""
        args = {"kind": self.kind if self.kind != "all" else None,
                "channel": self.channel_id, "q": self.keyword or None,
                "total": self.total_exact,
                "total_min": self.total_min if self.total_exact is None else None,
                "total_max": self.total_max if self.total_exact is None else None,
                "link": self.link or None, "sync": self.sync or None,
                "diff": "1" if self.difference else None, "page": self.page if self.page > 1 else None}
        args.update(overrides)
        return {key: str(value) for key, value in args.items() if value is not None}


def _whole(raw: str, label, problems: list) -> int | None:
    raw = raw.strip().replace(",", "")
    if not raw:
        return None
    if not _WHOLE.fullmatch(raw) or abs(int(raw)) > TOTAL_LIMIT:
        problems.append(_l("%(field)s must be a whole number from -%(limit)s to %(limit)s; it was ignored.",
                           field=label, limit=f"{TOTAL_LIMIT:,}"))
        return None
    return int(raw)


def _choice(raw: str, choices: tuple[str, ...], label, problems: list) -> str:
    raw = raw.strip()
    if raw and raw not in choices:
        problems.append(_l("%(field)s has no option %(value)s; it was ignored.", field=label, value=raw[:40]))
        return ""
    return raw


def parse_filters(args: Mapping[str, str]) -> GridFilters:
    """Read the grid's filters from query-string ``args`` (``request.args``).

    ``kind`` all|set; ``channel`` a channel id; ``q`` the keyword; ``total`` an exact total
    stock, or ``total_min`` / ``total_max`` a range (either end may be open); ``link``
    linked|unlinked|problem; ``sync`` on|off; ``diff=1`` difference products only; ``page``.
    Anything unusable is dropped, with a sentence in ``problems`` saying so.
    """
    problems: list = []
    kind = _choice(args.get("kind", ""), KINDS, _l("Products"), problems) or "all"
    channel_id = None
    raw_channel = args.get("channel", "").strip()
    if raw_channel:
        if _ID.fullmatch(raw_channel) and 1 <= int(raw_channel) <= MAX_ID:
            channel_id = int(raw_channel)
        else:
            problems.append(_l("There is no channel %(value)s; the grid shows every channel.",
                               value=raw_channel[:40]))
    keyword = args.get("q", "").strip()
    if len(keyword) > KEYWORD_LIMIT:
        problems.append(_l("The keyword was cut to %(n)d characters.", n=KEYWORD_LIMIT))
        keyword = keyword[:KEYWORD_LIMIT]
    exact = _whole(args.get("total", ""), _l("Total stock"), problems)
    low = _whole(args.get("total_min", ""), _l("Total stock from"), problems)
    high = _whole(args.get("total_max", ""), _l("Total stock to"), problems)
    if exact is not None and (low is not None or high is not None):
        problems.append(_l("Give either an exact total stock or a range; the range was ignored."))
        low = high = None
    if low is not None and high is not None and low > high:
        problems.append(_l("The total stock range starts above its end (%(low)d > %(high)d); it was ignored.",
                           low=low, high=high))
        low = high = None
    link = _choice(args.get("link", ""), LINKS, _l("Link status"), problems)
    sync = _choice(args.get("sync", ""), SYNCS, _l("Sync"), problems)
    raw_diff = args.get("diff", "").strip()
    if raw_diff not in ("", "0", "1"):
        problems.append(_l("%(field)s has no option %(value)s; it was ignored.", field=_l("Differences only"),
                           value=raw_diff[:40]))
    page = 1
    raw_page = args.get("page", "").strip()
    if raw_page:
        if _ID.fullmatch(raw_page) and 1 <= int(raw_page) <= MAX_ID:
            page = int(raw_page)
        else:
            problems.append(_l("The page number must be a whole number from 1 to %(max)d; showing page 1.",
                               max=MAX_ID))
    return GridFilters(kind=kind, channel_id=channel_id, keyword=keyword, total_min=low, total_max=high,
                       total_exact=exact, link=link, sync=sync, difference=raw_diff == "1", page=page,
                       problems=tuple(problems))
