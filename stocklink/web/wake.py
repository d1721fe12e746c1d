"""The webhook's wake of the inbox: at most ~40 ms on Redis, and retried when Redis fails.

The notification is committed before the wake, so a wake that fails loses nothing: the
inbox sweeper (every minute) wakes rows left waiting. So that a short Redis stall or
restart does not leave them waiting for that sweep, a failed wake is retried by one
background thread per process, on the same quick client, until Redis answers; it stops
after :data:`GIVE_UP_AFTER` seconds (the sweeper is still there).

While that thread runs, the process's webhooks skip the wake (Redis failed a moment ago;
each would wait ~40 ms on it for nothing): the thread wakes the inbox once more after it
lowers its flag, so a row whose webhook skipped the wake — committed before the flag went
down — is seen by that drain. The thread's first wake queues a drain even when it finds the
wake set: a ``SET NX`` that timed out on a stalled Redis is applied when Redis resumes, and
would otherwise hold the wake with no drain behind it for ``WAKE_TTL``. A second drain is
harmless (a drain applies only the rows it claims).
"""
from __future__ import annotations

import logging
import threading
import time

from stocklink.infra.queues import quick_redis
from stocklink.jobs.inbox import wake_inbox

log = logging.getLogger(__name__)

RETRY_EVERY = (0.5, 1, 2, 5)  # seconds between retries of a failed wake (the last repeats)
GIVE_UP_AFTER = 600.0

_retrying = threading.Event()  # set while this process's retry thread runs
_starting = threading.Lock()


def wake_after_store(app) -> bool:
    """Wake the inbox for a row just committed; never raises, never waits on a stalled Redis.

    Returns whether the wake reached Redis now (else the retry thread wakes it later)."""
    if _retrying.is_set():
        return False
    try:
        wake_inbox(quick_redis())
        return True
    except Exception as exc:  # stored is enough: retried here, and the sweeper wakes waiting rows
        log.warning("inbox row stored but the inbox was not woken (%s: %s); retrying in the background",
                    type(exc).__name__, exc)
        with _starting:
            if not _retrying.is_set():
                _retrying.set()
                threading.Thread(target=_retry, args=(app,), name="stocklink-wake-retry", daemon=True).start()
        return False


def _retry(app) -> None:
    started, attempt, woken = time.monotonic(), 0, False
    try:
        while not woken and time.monotonic() - started < GIVE_UP_AFTER:
            time.sleep(RETRY_EVERY[min(attempt, len(RETRY_EVERY) - 1)])
            attempt += 1
            try:
                with app.app_context():
                    wake_inbox(quick_redis(), force=True)
                woken = True
            except Exception:
                continue
    finally:
        _retrying.clear()
    if not woken:
        log.warning("gave up waking the inbox after %.0f s; the sweeper will", GIVE_UP_AFTER)
        return
    try:  # for rows whose webhooks skipped the wake while the flag was up
        with app.app_context():
            wake_inbox(quick_redis())
        log.info("inbox woken after %d retries", attempt)
    except Exception:
        log.warning("inbox woken after %d retries, but not the last time; the sweeper will", attempt)
