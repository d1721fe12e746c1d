"""Leases instead of long locks: a short time to live, renewed by a heartbeat while the work runs.

A worker killed with ``kill -9`` cannot release what it holds; whatever it held must free
itself within :data:`LEASE_TTL` seconds. So every claim (the push lock per channel, the inbox
rows a drain holds, the drain's wake) is taken for :data:`LEASE_TTL` and renewed every
:data:`HEARTBEAT_EVERY` seconds by a :class:`Heartbeat` thread for as long as its holder is
alive. The thread does nothing but renew: a holder that hangs in a platform call keeps its
lease (the call has its own timeout), a holder that dies loses it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis.exceptions import LockError

log = logging.getLogger(__name__)

LEASE_TTL = 30  # seconds: what a dead worker's claims outlive it by, at most
HEARTBEAT_EVERY = 10  # seconds between renewals: three chances before the lease runs out


class Heartbeat:
    """``with Heartbeat(renew):`` calls ``renew()`` every ``every`` seconds until the block ends.

    A failing renewal is logged and tried again at the next beat (Redis may be restarting);
    ``renew`` returning ``False`` means the lease is lost, and the beat stops.
    """

    def __init__(self, renew: Callable[[], object], *, every: float = HEARTBEAT_EVERY, name: str = "lease"):
        self._renew = renew
        self._every = every
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                if self._renew() is False:
                    self.lost = True
                    log.warning("%s: the lease was lost (taken over after it ran out)", self._name)
                    return
            except Exception as exc:  # a beat must never kill its holder
                log.warning("%s: could not renew the lease (%s: %s); trying again", self._name,
                            type(exc).__name__, exc)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name=f"heartbeat:{self._name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._every + 5)


@contextmanager
def lease(redis, key: str, *, name: str) -> Iterator[bool]:
    """``with lease(redis, key, name=…) as held:`` — take ``key`` for :data:`LEASE_TTL` seconds
    without waiting, renewed by a :class:`Heartbeat` while the block runs, released at its end.
    ``held`` is False when another holder has it (the block should then do nothing)."""
    lock = redis.lock(key, timeout=LEASE_TTL, thread_local=False)
    if not lock.acquire(blocking=False):
        yield False
        return
    try:
        with Heartbeat(lock.reacquire, name=name):
            yield True
    finally:
        try:
            lock.release()
        except LockError:
            pass
