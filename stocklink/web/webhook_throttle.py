"""Wrong customer codes on ``POST /webhooks/smaregi/<code>``, throttled per client address.

The customer code is the webhook's only credential (SPEC §4), and a merchant may choose a
short one, so guessing it must be slow: after :data:`DEFAULT_LIMIT` wrong codes from one
address within :data:`WINDOW_S` seconds, that address is answered 429 — for every code,
the right one included, or a guess would still show when it hit — until the window passes.

Two places keep the count, so that a good code never waits on Redis:

- the decision "is this address throttled?" is taken from this process's memory only;
- a wrong code is counted in Redis (one pipeline, off the success path), so the processes
  of a gunicorn server share the count; the process that sees the count pass the limit
  remembers the address. Other processes learn it at the next wrong code they see, so an
  address gets at most one extra try per process. When Redis fails, the count falls back
  to this process's memory (fail-open: never a 500, never a wait on the good path).

The client address is ``request.remote_addr``: behind a reverse proxy, the proxy-count
setting (ProxyFix) makes it the real client's.
"""
from __future__ import annotations

import logging
import threading
import time

from flask import current_app

from stocklink.infra.queues import get_redis

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20  # wrong codes per address and window (config WEBHOOK_CODE_ATTEMPTS)
WINDOW_S = 60  # seconds; renewed by every wrong code, as the login throttle does
KEY = "stocklink:webhook-bad-code:{}"
_MAX_ADDRESSES = 10_000  # memory bound: expired entries are dropped beyond this


class _Memory:
    """This process's part, one per app: the addresses it throttles, and counts while Redis fails."""

    def __init__(self):
        self.lock = threading.Lock()
        self.blocked: dict[str, float] = {}  # address → monotonic time the block ends
        self.local: dict[str, tuple[float, int]] = {}  # address → (window end, wrong codes)
        self.redis_failing = False

    def forget_expired(self, now: float) -> None:
        """Keep memory bounded under a flood from many addresses (called with the lock held)."""
        for table in (self.blocked, self.local):
            if len(table) > _MAX_ADDRESSES:
                for address in [a for a, v in table.items() if (v if isinstance(v, float) else v[0]) <= now]:
                    del table[address]
                if len(table) > _MAX_ADDRESSES:  # all live: drop the oldest half
                    for address in list(table)[:len(table) // 2]:
                        del table[address]


def _memory() -> _Memory:
    memory = current_app.extensions.get("webhook_throttle")
    if memory is None:
        memory = current_app.extensions.setdefault("webhook_throttle", _Memory())
    return memory


def _limit() -> int:
    return int(current_app.config.get("WEBHOOK_CODE_ATTEMPTS", DEFAULT_LIMIT))


def retry_after(address: str | None) -> int | None:
    """Seconds until ``address`` may try again, or None if it is not throttled. Memory only."""
    memory = _memory()
    if not memory.blocked:
        return None
    now = time.monotonic()
    with memory.lock:
        until = memory.blocked.get(address or "")
        if until is None:
            return None
        if until <= now:
            del memory.blocked[address or ""]
            return None
        return max(1, int(until - now + 0.999))


def wrong_code(address: str | None) -> int | None:
    """Count one wrong code from ``address``; returns :func:`retry_after` if it is now throttled."""
    address, memory = address or "", _memory()
    try:
        pipe = get_redis().pipeline()
        pipe.incr(KEY.format(address))
        pipe.expire(KEY.format(address), WINDOW_S)
        count = int(pipe.execute()[0])
        memory.redis_failing = False
    except Exception:  # Redis down or stalled: count here rather than fail the request
        if not memory.redis_failing:
            log.warning("wrong customer codes are counted in this process only: Redis did not answer")
        memory.redis_failing = True
        count = _count_locally(memory, address)
    if count <= _limit():
        return None
    now = time.monotonic()
    with memory.lock:
        if address not in memory.blocked:
            # The address only; never the code that was tried.
            log.warning("webhook: %d wrong customer codes from %s; throttled for %d s", count, address, WINDOW_S)
        memory.blocked[address] = now + WINDOW_S
        memory.forget_expired(now)
    return retry_after(address)


def _count_locally(memory: _Memory, address: str) -> int:
    now = time.monotonic()
    with memory.lock:
        end, count = memory.local.get(address, (0.0, 0))
        count = count + 1 if end > now else 1
        memory.local[address] = (now + WINDOW_S, count)
        memory.forget_expired(now)
        return count
