"""The small interface every platform client shares.

Errors map to SPEC §6: :class:`AuthError` is level 9 (the channel stops until new
credentials are saved and the error is cleared), :class:`TemporaryError` is level 8
(retried with backoff). Anything else a platform answers that the client does not
understand is a :class:`PlatformError` and is treated as level 8 as well.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import requests

DEFAULT_TIMEOUT = 10.0

# A catalogue page refused for the rate limit is sent again after its Retry-After, this many
# times, when the wait is short: an import of thousands of pages should not start over for one.
PAGE_RETRIES = 3
MAX_PAGE_WAIT = 10.0

T = TypeVar("T")


class PlatformError(Exception):
    """A platform refused or failed a request. ``code`` is the platform's own code."""

    level = 8

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status

    @property
    def outcome_unknown(self) -> bool:
        """The request may have been applied although no answer came (a timeout or a lost
        connection): it must be settled by reading back, not sent again blind."""
        return False


class AuthError(PlatformError):
    """Credentials are wrong, expired or revoked: level 9, the channel stops."""

    level = 9


class TemporaryError(PlatformError):
    """Maintenance, 5xx, timeout, 429: level 8, retry later (``retry_after`` seconds if known)."""

    level = 8

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after

    @property
    def outcome_unknown(self) -> bool:
        return self.code in ("timeout", "connection")  # as :func:`send` raises them

    @property
    def rate_limited(self) -> bool:
        """Refused for the platform's rate limit (HTTP 429, Shopify's THROTTLED): nothing was
        applied, so the same request may be sent again once ``retry_after`` has passed."""
        return self.status == 429 or self.code == "THROTTLED"


@dataclass(frozen=True)
class StockWrite:
    """One listing's stock as stocklink wants it on the channel.

    ``quantity`` is the absolute target. ``expected`` is the channel quantity stocklink
    last confirmed (used for compare-and-set and for relative writes); ``None`` when
    unknown. ``key`` is an idempotency key unique to this write.
    """

    identifier: str
    quantity: int
    expected: int | None = None
    key: str = ""


@dataclass
class WriteResult:
    """What the channel made of one :class:`StockWrite`.

    ``status``: ``ok`` (``confirmed`` holds the channel quantity now), ``unknown_item``
    (a link problem for the merchant, SPEC §11.8), ``stale`` (compare-and-set lost:
    ``confirmed`` holds the fresh channel quantity) or ``pending`` (accepted
    asynchronously; ``ref`` names the upload, e.g. a NextEngine ``que_id``).
    """

    identifier: str
    status: str
    confirmed: int | None = None
    detail: str = ""
    ref: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionCheck:
    """What a connection test found, as facts the console puts into words in the merchant's
    language: the account (shop or company name) and location, how many products, and the
    Smaregi store (``store_checked`` is false when Smaregi does not let stocklink read stores)."""

    account: str | None = None
    location: str | None = None
    products: int | None = None
    store: str | None = None
    store_name: str | None = None
    store_checked: bool = True


def new_session() -> requests.Session:
    """A requests session with a stocklink User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = "stocklink/0.1"
    return session


def send(session: requests.Session, method: str, url: str, *, timeout: float = DEFAULT_TIMEOUT,
         **kwargs) -> requests.Response:
    """Send one request; transport failures become :class:`TemporaryError`."""
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise TemporaryError(f"timeout: {method} {url}", code="timeout") from exc
    except requests.ConnectionError as exc:
        raise TemporaryError(f"connection failed: {method} {url}", code="connection") from exc


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds, if the platform sent one."""
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ChannelClient:
    """What every channel client shares: constructed from a base URL, credentials and the
    channel's settings only (the sandbox differs by base URL). ``on_credentials`` is called
    with the new credentials whenever the platform rotates them, so the caller can persist them."""

    kind = ""
    max_batch = 1

    def __init__(self, base_url: str, credentials: dict, settings: dict | None = None, *,
                 session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT,
                 on_credentials=None):
        self.base_url = base_url.rstrip("/")
        self.credentials = dict(credentials)
        self.settings = dict(settings or {})
        self.session = session or new_session()
        self.timeout = timeout
        self.on_credentials = on_credentials
        self.setup()

    def setup(self) -> None:
        """What a client adds to the construction above (read its settings, make its locks)."""

    def write_mode(self, write: StockWrite) -> str:
        """How the channel applies ``write``: ``absolute`` (sending it twice is harmless),
        ``compare_and_set``, ``relative`` (sending it twice applies it twice) or ``delta``.
        Recorded with each write intent (:mod:`stocklink.services.write_intents`)."""
        return "absolute"


def page_with_retries(fetch: Callable[[], T], *, retries: int = PAGE_RETRIES,
                      max_wait: float = MAX_PAGE_WAIT) -> T:
    """``fetch()`` one page of a read; a rate-limited refusal (:attr:`TemporaryError.rate_limited`,
    nothing applied) is tried again after its ``retry_after`` up to ``retries`` times while the wait
    is at most ``max_wait`` seconds. Any other error, or the last refusal, reaches the caller."""
    for attempt in range(retries + 1):
        try:
            return fetch()
        except TemporaryError as exc:
            wait = exc.retry_after if exc.retry_after is not None else 1.0
            if not exc.rate_limited or attempt == retries or wait > max_wait:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")


def pause_between_pages(pace_s: float, page: int) -> None:
    """Sleep ``pace_s`` seconds before every page but the first (catalogue pacing)."""
    if page > 0 and pace_s > 0:
        time.sleep(pace_s)
