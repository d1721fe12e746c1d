"""Fault suite: kill -9 at every point, Redis stalled and restarted, repeated movements, fuzz.

Run from the repository root::

    .venv/bin/python bench/faults.py                # every scenario (about 10-15 minutes)
    .venv/bin/python bench/faults.py --quick        # a subset, shorter (about 3-4 minutes)
    .venv/bin/python bench/faults.py --only kill_relative_push,fuzz
    .venv/bin/python bench/faults.py --postgres     # each stack on a throwaway PostgreSQL cluster

Options: ``--cap S`` (seconds a scenario waits for convergence, default 90), ``--keep`` (keep
each stack's temporary directory and logs), ``--list``.

Each scenario starts a fresh stack out of the project's real parts (bench/_harness.py:
gunicorn 4x4, two RQ workers, RQ's cron scheduler, SQLite or PostgreSQL, the demo sandboxes
in this process; for the Redis scenarios a ``redis-server`` process of its own). Workers and
cron are supervised as systemd's ``Restart=always`` would: a killed or crashed one is
replaced after 1 s. The products are the demo's linkable, stock-managed products; they have
no min / max / reserve rules, so each channel must end up holding Smaregi's stock: ColorMe
and Shopify by absolute value, NextEngine by the deltas it was sent.

Scenarios:

- ``kill_drain``: Smaregi's reads slowed (6 s); a sale of every product; kill -9 of the
  worker whose drain holds the claimed notifications while it waits on Smaregi.
- ``kill_absolute_push``: Shopify answering 2 s late (the write applied, the answer held);
  kill -9 of the worker pushing to Shopify once its first batch is applied.
- ``kill_relative_push``: ColorMe answering 0.8 s late; kill -9 of the worker pushing to
  ColorMe once ColorMe applied its first increment.
- ``kill_nextengine_upload``: NextEngine answering 1.5 s late; kill -9 of the worker pushing
  to NextEngine once NextEngine took the upload.
- ``kill_idle``: kill -9 of an idle worker, then the sales.

  In each kill scenario the slowness is switched off after the kill, a second sale of every
  product follows 1 s later, and the clock runs from the kill.
- ``redis_stall``: 50 POS sales/s; Redis stopped (SIGSTOP) for 15 s, then continued. Ack
  latency of the sales sent during the stall; ``/healthz`` probed meanwhile.
- ``redis_restart``: 10 POS sales/s; Redis killed (kill -9) and started again 20 s later on
  its data (Debian's snapshot policy). Workers and cron must survive (crashes are counted,
  and restarted as systemd would); ``/healthz`` probed throughout.
- ``sale_return_sale``: sale, return, sale of one product within one second (legacy: the first
  and third notifications are byte-identical), for several products.
- ``fuzz``: about 2,000 malformed, nested, huge and odd-digit webhook requests, then a Platform
  webhook naming 1,000 products.

Measured per scenario, from the channels' own state (the sandboxes), after the wait:

- ``converge_s``: seconds from the fault (the kill, SIGCONT, the restart, the last movement)
  until every channel holds its target for every product and keeps it for 3 s; ``null``
  when that did not happen within ``--cap`` seconds.
- ``doubled``: (channel, product) pairs below the target (only sales happened, so a channel
  below Smaregi took a decrement twice), plus those stocklink's own plan would take below it:
  a NextEngine listing whose stock plus the delta still to upload is below the target, a
  ColorMe listing whose next increment (target minus the last confirmed value) would land
  below it. The plan is read so that a double held back by a long lock is not missed.
- ``lost``: pairs above the target while stocklink has nothing left to do for them (no dirty
  listing, no delta or upload pending, no notification waiting), plus sales answered 200 but
  never stored. A pair still waiting on work is late, not lost (``late``).
- ``http_500``: webhook answers ≥ 500 (or a dropped connection) to a request, in any scenario.

The last line is one JSON object: ``lost``, ``doubled``, ``converge_s_max`` (``null`` if any
scenario did not converge; see ``not_converged``), ``http_500``, ``ack_p99_ms_redis_stall``,
more figures, every scenario's result, and ``goals_met``. Goals: 0, 0, ≤ 60, 0, ≤ 50.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests  # noqa: E402
from _harness import Stack, code_version, log, percentile, rounded, source_fingerprint, wait_until  # noqa: E402
from propagation import channel_readers, dedupe_key, failures, in_app, prepare_stock  # noqa: E402

GOALS = {"lost": 0, "doubled": 0, "converge_s_max": 60, "http_500": 0, "ack_p99_ms_redis_stall": 50}
KINDS = ("colorme", "shopify", "nextengine")
STABLE_S = 3.0  # a converged state must hold this long
POLL_S = 0.25
STOCK_LEVEL = 1000  # the Redis scenarios sell hundreds of pieces: stocktake first
HEALTHZ_ANSWER_S = 1.0  # /healthz must answer within this (issue: 503 within 1 s when Redis is down)
SCENARIOS: dict[str, object] = {}
QUICK = ("kill_relative_push", "redis_stall", "sale_return_sale", "fuzz")


def scenario(func):
    SCENARIOS[func.__name__] = func
    return func


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"only {', '.join(QUICK)}, with shorter loads and a 65 s cap")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--postgres", action="store_true", help="run each stack on a throwaway PostgreSQL cluster")
    parser.add_argument("--cap", type=float, default=None, help="seconds to wait for convergence (default 90)")
    parser.add_argument("--keep", action="store_true", help="keep each stack's temporary directory and logs")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args()
    if args.cap is None:
        args.cap = 65.0 if args.quick else 90.0
    return args


def new_stack(args, **options) -> Stack:
    # No SMTP server in the bench: mails are rendered and queued, not sent.
    return Stack(keep=args.keep, postgres=args.postgres, supervise=True,
                 env={"MAIL_SUPPRESS_SEND": "1"}, **options)


# -- what stocklink and the channels hold ------------------------------------------------------------
class World:
    """One stack's products, channel readers and targets."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.demo = stack.demo
        self.sm = stack.demo.smaregi
        self.readers = channel_readers(stack)
        self.channel_ids = in_app(stack, self._channel_ids)
        self.http_5xx = 0

    @staticmethod
    def _channel_ids() -> dict[str, int]:
        from sqlalchemy import select

        from stocklink.infra.extensions import db
        from stocklink.models import Channel
        return {kind: cid for cid, kind in db.session.execute(select(Channel.id, Channel.kind))}

    def baseline(self, min_stock: int = 0, timeout: float = 120.0) -> list[str]:
        """The products to watch, once the demo's first pushes are done and every channel
        holds Smaregi's stock."""
        from stocklink.sandbox.catalogue import sample_products

        pids = [s.product_id for s in sample_products()
                if not s.store_only and s.stock_control_division != "1" and s.product_id in self.readers
                and (self.sm.stock_of(s.product_id) or 0) >= min_stock]

        def settled():
            return not self.mismatches(pids) and self.pending()["inbox"] == 0 and self.pending()["dirty"] == 0
        wait_until(settled, timeout, 0.2, "the demo's first pushes to settle")
        return pids

    def targets(self, pids) -> dict[str, int]:
        return {pid: max(0, self.sm.stock_of(pid) or 0) for pid in pids}

    def values(self, pids) -> dict[tuple[str, str], int | None]:
        return {(pid, kind): read() for pid in pids for kind, read in self.readers[pid].items()}

    def mismatches(self, pids, targets=None) -> list[tuple[str, str, int | None, int]]:
        targets = targets or self.targets(pids)
        return [(pid, kind, value, targets[pid]) for (pid, kind), value in self.values(pids).items()
                if value != targets[pid]]

    def sell_all(self, pids) -> None:
        """One POS sale of one piece of every product: one notification naming them all."""
        self.sm.sell([(pid, 1) for pid in pids])
        self._count_5xx(self.sm.sends[-1])

    def _count_5xx(self, send) -> None:
        last = send.last
        if last is not None and last.status is not None and last.status >= 500:
            self.http_5xx += 1

    def pending(self) -> dict[str, int]:
        """Work stocklink still has: notifications not done (``inbox_active``: waiting or being
        applied; ``inbox`` also counts failed ones waiting for a retry) and dirty listings."""
        from sqlalchemy import func, select

        from stocklink.infra.extensions import db
        from stocklink.models import Listing, SmaregiInbox

        def count():
            statuses = dict(db.session.execute(select(SmaregiInbox.status, func.count())
                                               .group_by(SmaregiInbox.status)).all())
            dirty = db.session.scalar(select(func.count()).select_from(Listing).where(Listing.dirty.is_(True)))
            active = statuses.get("received", 0) + statuses.get("processing", 0)
            return {"inbox": active + statuses.get("failed", 0), "inbox_active": active, "dirty": dirty or 0}
        return in_app(self.stack, count)

    def plan(self) -> dict[tuple[str, str], dict]:
        """(product, kind) → what stocklink will still do for that listing."""
        from sqlalchemy import select

        from stocklink.infra.extensions import db
        from stocklink.models import Channel, Listing, Product

        def read():
            rows = db.session.execute(
                select(Product.smaregi_product_id, Channel.kind, Listing.dirty, Listing.pending_delta,
                       Listing.last_confirmed_quantity, Listing.pending_ref)
                .join(Listing, Listing.product_id == Product.id).join(Channel, Listing.channel_id == Channel.id)
                .where(Product.smaregi_product_id.is_not(None))).all()
            return {(pid, kind): {"dirty": bool(dirty), "pending_delta": int(delta or 0), "confirmed": confirmed,
                                  "pending_ref": ref}
                    for pid, kind, dirty, delta, confirmed, ref in rows}
        return in_app(self.stack, read)

    def verdict(self, pids, sold_not_stored: int = 0) -> dict:
        """Classify every (product, channel) pair: right, doubled, lost or late (see the module doc)."""
        targets = self.targets(pids)
        values = self.values(pids)
        plan = self.plan()
        inbox_waiting = self.pending()["inbox"]
        doubled, lost, late, examples = [], [], [], []
        for (pid, kind), value in values.items():
            target = targets[pid]
            p = plan.get((pid, kind), {})
            busy = p.get("dirty") or p.get("pending_delta") or p.get("pending_ref") or inbox_waiting
            eventual = value
            if value is not None:
                if kind == "nextengine":
                    eventual = value + p.get("pending_delta", 0)
                elif kind == "colorme" and p.get("dirty"):
                    confirmed = p.get("confirmed")
                    eventual = target if confirmed is None else value + (target - confirmed)
                elif p.get("dirty"):
                    eventual = target
            if value is None:
                lost.append((pid, kind))
            elif value < target or eventual < target:
                doubled.append((pid, kind))
            elif value > target and not busy:
                lost.append((pid, kind))
            elif value != target:
                late.append((pid, kind))
            else:
                continue
            if len(examples) < 6:
                examples.append(f"{kind} {pid}: holds {value}, target {target}, plan {p}")
        return {"doubled": len(doubled), "lost": len(lost) + sold_not_stored, "late": len(late),
                "doubled_by_kind": dict(Counter(k for _, k in doubled)),
                "lost_by_kind": dict(Counter(k for _, k in lost)), "examples": examples,
                "inbox_waiting": inbox_waiting}

    def watch(self, pids, since: float, cap: float) -> float | None:
        """Seconds from ``since`` until every channel held its target for STABLE_S; None if not
        within ``cap`` seconds."""
        deadline = since + cap
        streak = None
        while True:
            now = time.monotonic()
            if not self.mismatches(pids):
                streak = streak or now
                if now - streak >= STABLE_S:
                    return round(streak - since, 1)
            else:
                streak = None
                if now > deadline:
                    return None
            if streak is not None and streak > deadline:
                return None
            time.sleep(POLL_S)

    def holder(self, predicate):
        """The child process of the RQ worker whose current job matches ``predicate``, or None."""
        for worker in self.stack.rq_workers():
            if predicate(worker):
                child = self.stack.child_by_pid(worker["pid"])
                if child is not None:
                    return child
        return None

    def push_of(self, kind: str):
        cid = self.channel_ids[kind]
        return lambda w: (w["func"] or "").endswith("push_channel") and tuple(w["args"] or ()) == (cid,)


def result_of(name: str, world: World, converge_s, verdict: dict, **extra) -> dict:
    result = {"scenario": name, "converge_s": converge_s, "lost": verdict["lost"], "doubled": verdict["doubled"],
              "late": verdict["late"], "http_500": world.http_5xx, **extra,
              "doubled_by_kind": verdict["doubled_by_kind"], "lost_by_kind": verdict["lost_by_kind"],
              "examples": verdict["examples"]}
    restarts = world.stack.unexpected_restarts()
    result["crashes"] = [f"{r['name']} exit {r['returncode']}" for r in restarts]
    result["failed_jobs"] = sum(in_app_failures(world.stack).values())
    return result


def in_app_failures(stack: Stack) -> dict[str, int]:
    try:
        return failures(stack)
    except Exception as exc:  # noqa: BLE001 - a count, not a reason to lose the scenario's figures
        return {f"could not read failures: {type(exc).__name__}": 0}


# -- kill -9 of a worker -----------------------------------------------------------------------------
def kill_scenario(args, name: str, *, arm, ready, disarm=lambda world: None, before_sale: bool = False) -> dict:
    """Arm a slowness, sell, kill -9 the worker ``ready`` names once the write is in its window,
    switch the slowness off, sell again after 1 s, and measure from the kill."""
    with new_stack(args) as stack:
        world = World(stack)
        pids = world.baseline(min_stock=3)
        context = arm(world, pids)
        victim = None
        if before_sale:
            victim = wait_until(lambda: ready(world, context), 30, 0.02, f"{name}: the moment to kill")
        else:
            world.sell_all(pids)
            try:
                victim = wait_until(lambda: ready(world, context), 30, 0.01, f"{name}: the moment to kill")
            except TimeoutError:
                disarm(world)
                raise
        killed_at = time.monotonic()
        stack.kill(victim)
        log(f"{name}: killed {victim.name} (pid {victim.proc.pid}) with SIGKILL")
        disarm(world)
        if before_sale:
            time.sleep(0.5)
            world.sell_all(pids)
        time.sleep(1.0)
        world.sell_all(pids)
        converge_s = world.watch(pids, killed_at, args.cap)
        verdict = world.verdict(pids)
        return result_of(name, world, converge_s, verdict, products=len(pids), killed=victim.name)


@scenario
def kill_drain(args) -> dict:
    def arm(world, pids):
        # One slow answer: the drain's stock read, the first Smaregi call after the sale. More
        # would slow the replacement's reads too and charge the fault to the recovery.
        world.sm.fail_next("slow", count=1, seconds=6.0)
        return len(world.sm.api_log)

    def ready(world, calls_before):
        if len(world.sm.api_log) <= calls_before:
            return None
        return world.holder(lambda w: (w["func"] or "").endswith("process_inbox"))
    return kill_scenario(args, "kill_drain", arm=arm, ready=ready)


@scenario
def kill_absolute_push(args) -> dict:
    def arm(world, pids):
        world.demo.shopify.set_delay(2.0, after=True)
        return len(world.demo.shopify.adjustments)

    def ready(world, applied_before):
        if len(world.demo.shopify.adjustments) <= applied_before:
            return None
        return world.holder(world.push_of("shopify"))
    return kill_scenario(args, "kill_absolute_push", arm=arm, ready=ready,
                         disarm=lambda world: world.demo.shopify.set_delay(0, after=True))


@scenario
def kill_relative_push(args) -> dict:
    def arm(world, pids):
        world.demo.colorme.set_delay(0.8, after=True)
        return {pid: world.readers[pid]["colorme"]() for pid in pids}

    def ready(world, before):
        if all(world.readers[pid]["colorme"]() == value for pid, value in before.items()):
            return None
        return world.holder(world.push_of("colorme"))
    return kill_scenario(args, "kill_relative_push", arm=arm, ready=ready,
                         disarm=lambda world: world.demo.colorme.set_delay(0, after=True))


@scenario
def kill_nextengine_upload(args) -> dict:
    def arm(world, pids):
        world.demo.nextengine.set_delay(1.5, after=True)
        return len(world.demo.nextengine.uploads)

    def ready(world, uploads_before):
        if len(world.demo.nextengine.uploads) <= uploads_before:
            return None
        return world.holder(world.push_of("nextengine"))
    return kill_scenario(args, "kill_nextengine_upload", arm=arm, ready=ready,
                         disarm=lambda world: world.demo.nextengine.set_delay(0, after=True))


@scenario
def kill_idle(args) -> dict:
    def ready(world, _context):
        return world.holder(lambda w: w["job_id"] is None and w["state"] != "busy")
    return kill_scenario(args, "kill_idle", arm=lambda world, pids: None, ready=ready, before_sale=True)


# -- POS sales as load, /healthz probes -----------------------------------------------------------------
class SalesLoad:
    """Open-loop POS sales of one piece at ``rate``/s for ``seconds``, round robin over ``pids``.

    Each sale is made at the sandbox Smaregi, which posts its legacy notification synchronously
    (as Smaregi does), so the time of ``sell()`` is the webhook's answer plus the sandbox's own
    bookkeeping (well under a millisecond). A thread per sale in flight: a stalled webhook does
    not hold back the next sale.
    """

    def __init__(self, world: World, pids: list[str], rate: float, seconds: float):
        self.world, self.pids, self.rate, self.seconds = world, pids, rate, seconds
        self.results: list[dict] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sales-load", daemon=True)
        self._pool = ThreadPoolExecutor(max_workers=1200, thread_name_prefix="sale")

    def start(self) -> SalesLoad:
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        for i in range(int(self.rate * self.seconds)):
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._pool.submit(self._sale, i, due)

    def _sale(self, i: int, due: float) -> None:
        pid = self.pids[i % len(self.pids)]
        sent = time.monotonic()
        try:
            changes = self.world.sm.sell([(pid, 1)])
            error = None
        except Exception as exc:  # noqa: BLE001 - a failed sale is a result
            changes, error = [], f"{type(exc).__name__}: {exc}"
        done = time.monotonic()
        with self._lock:
            self.results.append({"pid": pid, "stock": changes[0].stock_amount if changes else None,
                                 "sent": sent, "done": done, "due": due, "error": error})

    def join(self) -> None:
        self._thread.join()
        self._pool.shutdown(wait=True)
        sends = {}
        for send in list(self.world.sm.sends):
            try:
                row = send.payload["params"]["data"][0]["rows"][0]
            except (KeyError, IndexError, TypeError):
                continue
            sends[(row["productId"], row["stockAmount"])] = send
        for r in self.results:
            send = sends.get((r["pid"], str(r["stock"])))
            last = send.last if send else None
            r["status"] = last.status if last else None
            r["key"] = dedupe_key(send.payload["params"]) if send else None
            if r["status"] is not None and r["status"] >= 500:
                self.world.http_5xx += 1

    def not_stored(self) -> int:
        """Sales answered 200 whose notification is not in the inbox."""
        from sqlalchemy import select

        from stocklink.infra.extensions import db
        from stocklink.models import SmaregiInbox

        keys = [r["key"] for r in self.results if r.get("status") == 200 and r.get("key")]

        def stored():
            found = set()
            for start in range(0, len(keys), 500):
                found |= set(db.session.scalars(select(SmaregiInbox.dedupe_key)
                                                .where(SmaregiInbox.dedupe_key.in_(keys[start:start + 500]))))
            return found
        found = in_app(self.world.stack, stored)
        return sum(1 for k in keys if k not in found)


class HealthProbe:
    """``GET /healthz`` every ``interval`` s (one at a time, ``timeout`` s each) until stopped."""

    def __init__(self, stack: Stack, interval: float = 1.0, timeout: float = 3.0):
        self.stack, self.interval, self.timeout = stack, interval, timeout
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz-probe", daemon=True)

    def start(self) -> HealthProbe:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                response = requests.get(f"{self.stack.url}/healthz", timeout=self.timeout)
                status, checks = response.status_code, response.json().get("checks", {})
            except (requests.RequestException, ValueError):
                status, checks = None, {}
            self.samples.append({"at": at, "elapsed": time.monotonic() - at, "status": status, "checks": checks})
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - at)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 2)

    def between(self, start: float, end: float) -> list[dict]:
        return [s for s in self.samples if start <= s["at"] < end]


def ack_figures(results: list[dict]) -> dict:
    latencies = [(r["done"] - r["sent"]) * 1000 for r in results if r.get("status") is not None]
    return {"sales": len(results), "ack_p50_ms": rounded(percentile(latencies, 50), 1),
            "ack_p99_ms": rounded(percentile(latencies, 99), 1), "ack_max_ms": rounded(max(latencies, default=None), 1),
            "statuses": dict(Counter(str(r.get("status")) for r in results))}


@scenario
def redis_stall(args) -> dict:
    pre, stall, post = (3.0, 6.0, 3.0) if args.quick else (5.0, 15.0, 5.0)
    with new_stack(args, redis="server") as stack:
        world = World(stack)
        pids = world.baseline()
        prepare_stock(stack, pids, world.readers)
        world.sm.configure(notify_timeout=60.0)  # measure how long an ack takes, not the sandbox's patience
        load = SalesLoad(world, pids, rate=50.0, seconds=pre + stall + post).start()
        time.sleep(pre)
        stack.redis_server.pause()
        stopped = time.monotonic()
        log(f"redis_stall: Redis stopped (SIGSTOP) for {stall:.0f} s under 50 sales/s")
        probe = HealthProbe(stack, interval=1.0, timeout=3.0).start()
        time.sleep(stall)
        stack.redis_server.resume()
        continued = time.monotonic()
        probe.stop()
        load.join()
        during = [r for r in load.results if stopped <= r["sent"] < continued]
        stall_acks = ack_figures(during)
        converge_s = world.watch(pids, continued, args.cap)
        verdict = world.verdict(pids, sold_not_stored=load.not_stored())
        health = probe.between(stopped, continued)
        return result_of(
            "redis_stall", world, converge_s, verdict, stall_s=stall,
            ack_p50_ms_redis_stall=stall_acks["ack_p50_ms"], ack_p99_ms_redis_stall=stall_acks["ack_p99_ms"],
            ack_max_ms_redis_stall=stall_acks["ack_max_ms"], sales_during_stall=stall_acks["sales"],
            statuses_during_stall=stall_acks["statuses"], ack_all=ack_figures(load.results),
            healthz_during_stall=_health_summary(health))


def _health_summary(samples: list[dict]) -> dict:
    elapsed = [s["elapsed"] * 1000 for s in samples]
    return {"probes": len(samples), "max_ms": rounded(max(elapsed, default=None), 0),
            "slow": sum(1 for s in samples if s["status"] is None or s["elapsed"] > HEALTHZ_ANSWER_S),
            "statuses": dict(Counter(str(s["status"]) for s in samples))}


@scenario
def redis_restart(args) -> dict:
    pre, outage, post = (3.0, 8.0, 5.0) if args.quick else (5.0, 20.0, 10.0)
    with new_stack(args, redis="server") as stack:
        world = World(stack)
        pids = world.baseline()
        prepare_stock(stack, pids, world.readers)
        load = SalesLoad(world, pids, rate=10.0, seconds=pre + outage + post).start()
        probe = HealthProbe(stack, interval=1.0, timeout=3.0).start()
        time.sleep(pre)
        killed_at = time.monotonic()
        stack.redis_server.kill()
        log(f"redis_restart: Redis killed (SIGKILL); starting it again in {outage:.0f} s")
        time.sleep(outage)
        stack.redis_server.start()
        restarted = time.monotonic()
        load.join()
        converge_s = world.watch(pids, restarted, args.cap)
        # /healthz must say "ok" again once the workers work: give it the same cap as convergence.
        wait_healthy = max(0.0, restarted + args.cap - time.monotonic())
        try:
            wait_until(lambda: probe.samples and probe.samples[-1]["status"] == 200, wait_healthy, 0.5)
        except TimeoutError:
            pass
        probe.stop()
        verdict = world.verdict(pids, sold_not_stored=load.not_stored())
        after = probe.between(restarted, float("inf"))
        healthy = next((s["at"] - restarted for s in after if s["status"] == 200), None)
        down_reports = [s for s in after if s["status"] != 200]
        crashes = stack.unexpected_restarts(since=killed_at)
        return result_of(
            "redis_restart", world, converge_s, verdict, outage_s=outage,
            worker_crashes=sum(1 for r in crashes if r["name"].startswith(("worker", "cron"))),
            crash_logs=[r["tail"].splitlines()[-1:] for r in crashes][:3],
            healthz_during_outage=_health_summary(probe.between(killed_at, restarted)),
            healthz_ok_after_restart_s=rounded(healthy, 1),
            healthz_not_ok_after_restart=dict(Counter(
                ",".join(f"{k}={v}" for k, v in sorted(s["checks"].items()) if v != "ok") or str(s["status"])
                for s in down_reports)),
            ack_all=ack_figures(load.results))


# -- sale, return, sale ------------------------------------------------------------------------------
@scenario
def sale_return_sale(args) -> dict:
    trials = 3 if args.quick else 6
    with new_stack(args) as stack:
        world = World(stack)
        pids = world.baseline(min_stock=2)[:trials]
        identical = 0
        for pid in pids:
            while time.time() % 1 > 0.5:  # all three within one clock second (updDateTime has seconds)
                time.sleep(0.01)
            world.sm.sell([(pid, 1)])
            first = world.sm.sends[-1]
            world.sm.refund([(pid, 1)])
            world.sm.sell([(pid, 1)])
            third = world.sm.sends[-1]
            for send in world.sm.sends[-3:]:
                world._count_5xx(send)
            identical += first.body == third.body
        last_at = time.monotonic()
        converge_s = world.watch(pids, last_at, args.cap)
        verdict = world.verdict(pids)
        return result_of("sale_return_sale", world, converge_s, verdict, trials=len(pids),
                         identical_bodies=identical)


# -- fuzz ----------------------------------------------------------------------------------------------
FORM = "application/x-www-form-urlencoded;charset=UTF-8"
ODD_DIGITS = ["²", "١٢٣", "１２３", "٨٠٠٠٠٠١", "８０００００１", "8000001²", "1" * 16, "9" * 40, "１"]
ODD_NUMBERS = ["-１", "1_000", "-1_0", "²", "１２３", "٣", str(10 ** 40), str(-10 ** 40), "1e3", "0x10", "∞"]


def _legacy_row(pid: str, amount="0", stock="0", division="02", **extra) -> dict:
    return {"storeId": "1", "productId": pid, "amount": amount, "stockAmount": stock, "layawayStockAmount": "0",
            "stockDivision": division, "fromStoreId": "", "toStoreId": "", "updDateTime": "2026-01-01 00:00:00",
            **extra}


def _legacy(params) -> tuple[bytes, dict]:
    text = params if isinstance(params, str) else json.dumps(params, ensure_ascii=False)
    return urlencode({"proc_name": "stock_upd", "params": text}).encode("ascii"), {"Content-Type": FORM}


def _platform(payload, event: str = "pos:stock", event_id: str | None = None) -> tuple[bytes, dict]:
    body = payload if isinstance(payload, bytes) else (
        payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode("utf-8")
    return body, {"Content-Type": "application/json", "Smaregi-Event": event,
                  "Smaregi-Event-Id": event_id or str(uuid.uuid4()), "Smaregi-Contract-Id": "demo"}


def fuzz_cases(total: int, real: list[str], stock: dict[str, int],
               seed: int = 11) -> list[tuple[str, str, bytes, dict]]:
    """``(category, expect, body, headers)``: ``expect`` is ``reject`` (must be 4xx) or ``any``.

    Bodies naming the demo's real products carry no movement (amount 0), except the ones that
    must be rejected (odd digits in a number, a malformed row beside a valid one): if one of
    those is applied, a channel moves, and the bench sees it.
    """
    rng = random.Random(seed)
    cases: list[tuple[str, str, bytes, dict]] = []
    nonce = iter(range(10 ** 9))

    def unique(row: dict) -> dict:
        return {**row, "updDateTime": f"2026-01-01 00:{next(nonce) % 60:02d}:{rng.randrange(60):02d}",
                "fuzz": str(next(nonce))}

    def add(category, expect, pair):
        cases.append((category, expect, *pair))

    def real_pid():
        return rng.choice(real)

    share = max(1, total // 20)
    # Deep nesting, where the parser meets it and deeper inside a row (2 KB at depth 1,000).
    for i in range(share * 2):
        depth = rng.choice([1000, 1000, 3000, 20000, 100000])
        nest = "[" * depth + "]" * depth
        shape = i % 4
        if shape == 0:
            add("nesting", "reject", _legacy(nest))
        elif shape == 1:
            add("nesting", "reject", _legacy('{"data": ' + nest + "}"))
        elif shape == 2:
            row = json.dumps(unique(_legacy_row("9999999")), ensure_ascii=False)[:-1] + ', "deep": ' + nest + "}"
            add("nesting", "reject", _legacy('{"data": [{"table_name": "Stock", "rows": [' + row + "]}]}"))
        else:
            add("nesting", "reject", _platform('{"contractId": "demo", "ids": ' + nest + "}"))
    # Huge bodies: 10 MB and 2 MB in a field nobody reads, and 10 MB of raw bytes.
    for size in (10_000_000, 10_000_000, 2_000_000):
        add("huge", "reject", _legacy({"data": [{"table_name": "Stock",
                                                   "rows": [unique(_legacy_row("9999999", memo="x" * size))]}]}))
    add("huge", "reject", (b"params=" + b"A" * 10_000_000, {"Content-Type": FORM}))
    add("huge", "reject", _platform({"contractId": "demo", "ids": [{"id": "1", "productId": "9999999",
                                                                     "storeId": "1", "memo": "x" * 10_000_000}]}))
    # Odd digits and lengths as product ids (legacy and Platform).
    for _ in range(share * 3):
        odd = rng.choice(ODD_DIGITS)
        if rng.random() < 0.7:
            add("odd_product_id", "reject", _legacy({"data": [{"table_name": "Stock",
                                                                 "rows": [unique(_legacy_row(odd))]}]}))
        else:
            add("odd_product_id", "reject", _platform({"contractId": "demo", "event": "pos:stock",
                                                        "ids": [{"id": str(rng.randrange(1, 10 ** 6)),
                                                                 "productId": odd, "storeId": "1"}]}))
    # Odd digits as quantities of a real product: applied, they would move NextEngine.
    for _ in range(share * 2):
        pid = real_pid()
        field = rng.choice(["amount", "amount", "stockAmount"])
        row = _legacy_row(pid, amount="-1", stock=str(stock[pid] - 1))
        row[field] = rng.choice(ODD_NUMBERS)
        add("odd_number", "reject", _legacy({"data": [{"table_name": "Stock", "rows": [unique(row)]}]}))
    # A valid row of a real product beside a malformed one: all or nothing.
    for _ in range(share):
        pid = real_pid()
        good = unique(_legacy_row(pid, amount="-1", stock=str(stock[pid] - 1)))
        bad = unique(_legacy_row(rng.choice(ODD_DIGITS + ["", "abc", "-5"])))
        rows = [good, bad] if rng.random() < 0.5 else [bad, good]
        add("mixed", "reject", _legacy({"data": [{"table_name": "Stock", "rows": rows}]}))
    # Wrong types and shapes.
    shapes = [
        "null", "[]", '"text"', "1", "{}", '{"data": {}}', '{"data": "x"}', '{"data": [1]}', '{"data": [[]]}',
        '{"data": [{"rows": {}}]}', '{"data": [{"rows": [1]}]}', '{"data": [{"rows": [null]}]}',
        '{"data": [{"rows": [{"productId": null}]}]}', '{"data": [{"rows": [{"productId": [8000001]}]}]}',
        '{"data": [{"rows": [{"productId": {"a": 1}}]}]}', '{"data": [{"rows": [{"productId": true}]}]}',
        '{"data": [{"rows": [{"productId": 8000001.5}]}]}', '{"data": [{"rows": [{"productId": "9999999", '
        '"amount": [1]}]}]}', '{"data": [{"rows": [{"productId": "9999999", "amount": 1e400}]}]}',
        '{"data": [{"rows": [{"productId": "9999999", "amount": true}]}]}',
        '{"data": [{"rows": [{"productId": "9999999", "storeId": {"x": 1}}]}]}',
    ]
    for _ in range(share * 3):
        add("types", "any", _legacy(rng.choice(shapes)))
    # Not JSON, not a form, broken encodings.
    raw = [
        (b"", {"Content-Type": FORM}), (b"params=", {"Content-Type": FORM}), (b"params=%7B", {"Content-Type": FORM}),
        (b"params=%FF%FE%00", {"Content-Type": FORM}), (b"\xff\xfe\x00garbage", {"Content-Type": FORM}),
        (b'{"params": "{}"}', {"Content-Type": "application/json"}), (b"params=%00", {"Content-Type": FORM}),
        (b"params=" + quote('{"data": [}').encode(), {"Content-Type": FORM}),
        (b"params=1&params=2", {"Content-Type": FORM}), (b"x" * 1000, {"Content-Type": "text/plain"}),
        (b"--b\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{\r\n--b--\r\n",
         {"Content-Type": "multipart/form-data; boundary=b"}),
        (b"--b\r\nbroken", {"Content-Type": "multipart/form-data; boundary=b"}),
    ]
    for _ in range(share * 2):
        add("encoding", "reject", rng.choice(raw))
    # Platform webhooks with wrong shapes and headers.
    for _ in range(share * 2):
        choice = rng.randrange(7)
        if choice == 0:
            add("platform", "reject", _platform({"contractId": "demo", "ids": {"id": "1"}}))
        elif choice == 1:
            add("platform", "reject", _platform({"contractId": "demo", "ids": [1, 2]}))
        elif choice == 2:
            add("platform", "reject", _platform(b"\xff\xfe{"))
        elif choice == 3:
            add("platform", "reject", _platform({"contractId": "demo", "ids": []}, event_id="e" * 65))
        elif choice == 4:
            add("platform", "reject", _platform({"contractId": "someone-else", "ids": []}))
        elif choice == 5:
            add("platform", "any", _platform({"contractId": "demo", "ids": [{"id": str(rng.randrange(10 ** 6)),
                                                                          "productId": "9999999", "storeId": "1"}]}))
        else:
            add("platform", "reject", _platform(json.dumps([{"contractId": "demo"}])))
    # Random mutations of a valid notification (of a product Smaregi does not know).
    valid = json.dumps({"data": [{"table_name": "Stock", "rows": [_legacy_row("9999999")]}]}, ensure_ascii=False)
    alphabet = '{}[]":,0123456789-.eE \\nulltrue' + "²１٣\u0000\u202e"
    while len(cases) < total:
        text = list(valid)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(text))
            op = rng.randrange(3)
            if op == 0:
                text[at] = rng.choice(alphabet)
            elif op == 1:
                text.insert(at, rng.choice(alphabet))
            elif len(text) > 1:
                del text[at]
        mutated = "".join(text)
        add("mutation", "any", _legacy(mutated))
    rng.shuffle(cases)
    return cases


@scenario
def fuzz(args) -> dict:
    total = 300 if args.quick else 2000
    with new_stack(args) as stack:
        world = World(stack)
        pids = world.baseline(min_stock=2)
        settings = importlib.import_module("stocklink.services.merchant_settings")
        code = in_app(stack, lambda: settings.get("smaregi.customer_code"))
        url = f"{stack.url}/webhooks/smaregi/{code}"
        before = world.values(pids)
        rows_before = _inbox_total(stack)
        cases = fuzz_cases(total, pids, world.targets(pids))
        local = threading.local()

        def post(case):
            category, expect, body, headers = case
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            try:
                response = session.post(url, data=body, headers=headers, timeout=60)
                return category, expect, response.status_code, None
            except requests.RequestException as exc:
                local.session = None
                return category, expect, None, type(exc).__name__
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(post, cases))
        sent_s = time.monotonic() - started
        wrong_code = requests.post(f"{stack.url}/webhooks/smaregi/not-the-code", data=_legacy("{}")[0],
                                   headers={"Content-Type": FORM}, timeout=30).status_code
        http_500 = sum(1 for _c, _e, status, error in answers if error or (status or 0) >= 500)
        world.http_5xx += http_500
        accepted_bad = Counter(c for c, expect, status, _ in answers if expect == "reject" and status == 200)
        by_category = {}
        for category, _expect, status, error in answers:
            by_category.setdefault(category, Counter())[str(status) if status else (error or "none")] += 1
        ok_answers = sum(1 for _c, _e, status, _ in answers if status == 200)
        # Let the drains finish whatever was accepted, then compare.
        try:
            # Rows set aside as failed are retried with a growing backoff: not waited for.
            wait_until(lambda: world.pending()["inbox_active"] == 0 and world.pending()["dirty"] == 0, args.cap,
                       0.5, "the inbox to drain after the fuzz")
            drained = True
        except TimeoutError:
            drained = False
        time.sleep(STABLE_S)
        after = world.values(pids)
        moved = sorted(f"{kind} {pid}: {before[(pid, kind)]} → {value}" for (pid, kind), value in after.items()
                       if value != before[(pid, kind)])
        rows_added = _inbox_total(stack) - rows_before
        stored_despite_refusal = max(0, rows_added - ok_answers)
        statuses = _inbox_statuses(stack)

        # One Platform webhook naming 1,000 products (Smaregi does not know them): its Smaregi calls.
        calls_before = len(world.sm.api_log)
        body, headers = _platform({"contractId": "demo", "event": "pos:stock", "action": "edited",
                                   "ids": [{"id": str(500000 + i), "productId": str(9100000 + i), "storeId": "1"}
                                           for i in range(1000)]})
        big_status = requests.post(url, data=body, headers=headers, timeout=60).status_code
        if big_status >= 500:
            world.http_5xx += 1
        try:
            wait_until(lambda: world.pending()["inbox_active"] == 0, 60, 0.5, "the 1,000-product notification")
            big_done = True
        except TimeoutError:
            big_done = False
        big_calls = len(world.sm.api_log) - calls_before

        # A channel a fuzz request moved is counted as fuzz_applied, not as a lost or doubled sale.
        verdict = {**world.verdict(pids), "lost": 0, "doubled": 0}
        result = result_of("fuzz", world, None, verdict, requests=len(answers), sent_s=round(sent_s, 1),
                           fuzz_applied=len(moved), moved=moved[:6],
                           accepted_bad=sum(accepted_bad.values()), accepted_bad_by_category=dict(accepted_bad),
                           stored_despite_refusal=stored_despite_refusal, drained=drained,
                           inbox_after=statuses, by_category={k: dict(v) for k, v in by_category.items()},
                           wrong_code_status=wrong_code, platform_1000_status=big_status,
                           platform_1000_smaregi_calls=big_calls, platform_1000_done=big_done)
        result.pop("converge_s")
        result.pop("late")
        return result


def _inbox_total(stack: Stack) -> int:
    from sqlalchemy import func, select

    from stocklink.infra.extensions import db
    from stocklink.models import SmaregiInbox
    return in_app(stack, lambda: db.session.scalar(select(func.count()).select_from(SmaregiInbox)) or 0)


def _inbox_statuses(stack: Stack) -> dict[str, int]:
    from sqlalchemy import func, select

    from stocklink.infra.extensions import db
    from stocklink.models import SmaregiInbox
    return in_app(stack, lambda: {s: n for s, n in db.session.execute(
        select(SmaregiInbox.status, func.count()).group_by(SmaregiInbox.status))})


# -- the run -----------------------------------------------------------------------------------------
def summary_line(result: dict) -> str:
    shown = {k: v for k, v in result.items() if k not in ("scenario", "examples")}
    return f"SCENARIO {result['scenario']}: " + json.dumps(shown, ensure_ascii=False)


def scenario_ok(result: dict) -> bool:
    if result.get("error"):
        return False
    ok = result.get("lost", 1) == 0 and result.get("doubled", 1) == 0 and result.get("http_500", 1) == 0 \
        and not result.get("crashes")
    if "converge_s" in result:
        ok = ok and result["converge_s"] is not None and result["converge_s"] <= GOALS["converge_s_max"]
    if "ack_p99_ms_redis_stall" in result:
        p99 = result["ack_p99_ms_redis_stall"]
        ok = ok and p99 is not None and p99 <= GOALS["ack_p99_ms_redis_stall"]
        ok = ok and result["healthz_during_stall"]["slow"] == 0
    if "healthz_during_outage" in result:
        ok = ok and result["healthz_during_outage"]["slow"] == 0 and result["worker_crashes"] == 0 \
            and result["healthz_ok_after_restart_s"] is not None
    if result["scenario"] == "fuzz":
        ok = ok and result["fuzz_applied"] == 0 and result["accepted_bad"] == 0 \
            and result["stored_despite_refusal"] == 0
    return ok


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def main() -> int:
    args = parse_args()
    if args.list:
        for name in SCENARIOS:
            print(name + ("  (quick)" if name in QUICK else ""))
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(QUICK if args.quick else SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    version, sources = code_version(), source_fingerprint()
    log(f"fault suite: {', '.join(names)}; cap {args.cap:.0f} s; code {version}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    started = time.monotonic()
    results = []
    for name in names:
        log(f"--- {name}")
        t0 = time.monotonic()
        try:
            result = SCENARIOS[name](args)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others' figures
            log(f"{name} failed: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            result = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
        result["took_s"] = round(time.monotonic() - t0, 1)
        result["ok"] = scenario_ok(result)
        results.append(result)
        print(summary_line(result), flush=True)
        for example in result.get("examples", []):
            print(f"    {example}", flush=True)

    converge = {r["scenario"]: r.get("converge_s") for r in results if "converge_s" in r or r.get("error")}
    not_converged = sorted(n for n, v in converge.items() if v is None)
    stall = next((r for r in results if r["scenario"] == "redis_stall"), {})
    restart = next((r for r in results if r["scenario"] == "redis_restart"), {})
    fuzzed = next((r for r in results if r["scenario"] == "fuzz"), {})
    summary = {
        "lost": sum(r.get("lost", 0) for r in results),
        "doubled": sum(r.get("doubled", 0) for r in results),
        "converge_s_max": None if not_converged or not converge else max(converge.values()),
        "http_500": sum(r.get("http_500", 0) for r in results),
        "ack_p99_ms_redis_stall": stall.get("ack_p99_ms_redis_stall"),
        "not_converged": not_converged,
        "converge_s": converge,
        "ack_p50_ms_redis_stall": stall.get("ack_p50_ms_redis_stall"),
        "healthz_slow_redis_stall": (stall.get("healthz_during_stall") or {}).get("slow"),
        "worker_crashes_redis_restart": restart.get("worker_crashes"),
        "healthz_ok_after_redis_restart_s": restart.get("healthz_ok_after_restart_s"),
        "fuzz_applied": fuzzed.get("fuzz_applied"),
        "fuzz_accepted_bad": fuzzed.get("accepted_bad"),
        "errors": {r["scenario"]: r["error"] for r in results if r.get("error")},
        "scenarios_ok": {r["scenario"]: r["ok"] for r in results},
        "quick": args.quick,
        "database": "postgresql" if args.postgres else "sqlite",
        "code": version,
        "source_changed_during_run": source_fingerprint() != sources,
        "took_s": round(time.monotonic() - started, 1),
    }
    summary["goals_met"] = all(r["ok"] for r in results)
    print(f"Goals met: {summary['goals_met']}  (lost {summary['lost']}, doubled {summary['doubled']}, "
          f"converge_s_max {summary['converge_s_max']}, not converged {not_converged or 'none'}, "
          f"http_500 {summary['http_500']}, ack_p99_ms_redis_stall {summary['ack_p99_ms_redis_stall']})")
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        sys.exit(130)
