"""Benchmark: POS sale → every channel, and the Smaregi webhook's acknowledgement latency.

Run from the repository root::

    .venv/bin/python bench/propagation.py            # 200 sales, then 200 webhook req/s for 30 s
    .venv/bin/python bench/propagation.py --quick    # 200 sales, then 100 req/s for 5 s
    .venv/bin/python bench/propagation.py --postgres # the same on a throwaway PostgreSQL cluster

Options: ``--sales N``, ``--rate R``, ``--seconds S``, ``--workers N`` (RQ workers, default 2),
``--load-threads N``, ``--keep``
(keep the temporary directory with every process's log).

It starts a whole stocklink out of the project's real parts (see bench/_harness.py): a
fresh instance directory with a SQLite file (or the database of an existing
``DATABASE_URL``), an embedded Redis, gunicorn (``-w 4 -k gthread --threads 4``), two RQ
workers, RQ's cron scheduler, and the demo's sandbox Smaregi, ColorMe, Shopify and
NextEngine in this process. Everything is stopped at the end, also on errors and Ctrl-C.

What it measures:

1. Propagation. The chosen products (every linkable, stock-managed sample product with
   non-negative stock) get a stocktake to 1000 and the bench waits until all three channels
   show 1000. Then ``--sales`` POS sales, one at a time, round robin over those products:
   t0 just before ``smaregi.sell([(pid, 1)])`` (which posts the legacy webhook
   synchronously), then the three sandboxes are read in-process every ~2 ms until each shows
   Smaregi's new stock; the sample is t1 − t0 of the slowest channel. A sale not seen
   everywhere within 10 s is a miss. Per sale it also reads the inbox row's ``received_at``
   / ``processed_at`` to split the time into webhook, queue + worker, and push.
2. Ack latency. A separate process (bench/_ackload.py) posts unique, valid legacy
   notifications to ``POST /webhooks/smaregi/<customer code>`` at ``--rate`` req/s for
   ``--seconds`` over keep-alive connections, recording each request's latency and status.
   ``lost`` = 200-answered notifications missing from ``smaregi_inbox`` plus stored rows
   that are not ``done`` within 60 s after the load (the workers drain meanwhile). These
   notifications are 1-piece sales Smaregi never made: stocklink re-reads Smaregi (unchanged)
   and forwards a −1 delta to NextEngine for each, as it should.

Also reported: the commit under test (``code``) and a warning when stocklink/ changed during
the run (workers started with ``--fork`` import job modules from disk, so a run straddling an edit measures
two versions), failed RQ jobs / inbox rows, and the load average at the start (this is a
shared 2-CPU machine: everything, load generator included, competes for it).

Goals: propagation p95 ≤ 2000 ms, ack p99 ≤ 20 ms, lost 0. Human-readable lines first;
the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    ROOT,
    Stack,
    code_version,
    log,
    percentile,
    rounded,
    source_fingerprint,
    wait_until,
)

GOALS = {"propagation_p95_ms": 2000, "ack_p99_ms": 20, "lost": 0}
STOCK_LEVEL = 1000
SALE_TIMEOUT = 10.0
POLL_INTERVAL = 0.002
DRAIN_TIMEOUT = 60.0
CHANNEL_KINDS = ("colorme", "shopify", "nextengine")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sales", type=int, default=200, help="POS sales to time (default 200)")
    parser.add_argument("--rate", type=float, default=200.0, help="webhook requests per second (default 200)")
    parser.add_argument("--seconds", type=float, default=30.0, help="webhook load duration (default 30)")
    parser.add_argument("--quick", action="store_true", help="webhook load of 100 req/s for 5 s")
    parser.add_argument("--load-threads", type=int, default=48, help="load generator threads (default 48)")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers (default 2)")
    parser.add_argument("--postgres", action="store_true",
                        help="run on a throwaway PostgreSQL cluster instead of SQLite (needs the server binaries)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and its logs")
    args = parser.parse_args()
    if args.quick:
        args.rate, args.seconds = 100.0, 5.0
    return args


# -- the stack's state ---------------------------------------------------------------------------
def in_app(stack: Stack, func):
    """Run ``func()`` in a fresh app context (a fresh database session)."""
    with stack.app.app_context():
        return func()


def dirty_listings(stack: Stack) -> int:
    from sqlalchemy import func, select

    from stocklink.infra.extensions import db
    from stocklink.models import Listing
    return in_app(stack, lambda: db.session.scalar(select(func.count()).select_from(Listing)
                                                   .where(Listing.dirty.is_(True))))


Reader = Callable[[], "int | None"]


def channel_readers(stack: Stack) -> dict[str, dict[str, Reader]]:
    """For each Smaregi product id with a listing on all three channels: kind → read the sandbox stock."""
    from sqlalchemy import select

    from stocklink.infra.extensions import db
    from stocklink.models import Channel, Listing, Product

    demo = stack.demo
    rows = in_app(stack, lambda: db.session.execute(
        select(Product.smaregi_product_id, Channel.kind, Listing.identifier)
        .join(Listing, Listing.product_id == Product.id).join(Channel, Listing.channel_id == Channel.id)
        .where(Product.smaregi_product_id.is_not(None))).all())
    readers: dict[str, dict[str, Reader]] = {}
    for pid, kind, identifier in rows:
        if kind == "colorme":
            read = partial(demo.colorme.stock, int(identifier))  # ColorMe product id
        elif kind == "shopify":
            read = partial(demo.shopify.stock, int(identifier))  # Shopify inventory item id
        elif kind == "nextengine":
            read = partial(demo.nextengine.stock, identifier)  # NextEngine goods code
        else:
            continue
        readers.setdefault(pid, {})[kind] = read
    return {pid: r for pid, r in readers.items() if set(r) == set(CHANNEL_KINDS)}


def choose_products(stack: Stack, readers) -> list[str]:
    """Linkable (not store-only), stock-managed sample products whose Smaregi stock is ≥ 0.

    A negative stock is left out: a stocktake from −2 to 1000 is forwarded to NextEngine as
    +1002 (seed 001: stocktakes go as they are), so NextEngine would never show 1000.
    """
    from stocklink.sandbox.catalogue import sample_products

    chosen = []
    for s in sample_products():
        if s.store_only or s.stock_control_division == "1" or s.product_id not in readers:
            continue
        if (stack.demo.smaregi.stock_of(s.product_id) or 0) >= 0:
            chosen.append(s.product_id)
    return chosen


def dedupe_key(params) -> str:
    """The inbox key stocklink gives a legacy notification (its own parser computes it)."""
    from stocklink.platforms.smaregi.webhook import parse_legacy
    if not isinstance(params, str):
        params = json.dumps(params, ensure_ascii=False)
    return parse_legacy({"params": params}).dedupe_key


def inbox_rows(stack: Stack, keys: list[str]) -> dict[str, tuple]:
    """dedupe key → (id, status, received_at, processed_at) for the rows that exist."""
    from sqlalchemy import select

    from stocklink.infra.extensions import db
    from stocklink.models import SmaregiInbox

    found = {}

    def query():
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for row in db.session.execute(select(SmaregiInbox.dedupe_key, SmaregiInbox.id, SmaregiInbox.status,
                                                 SmaregiInbox.received_at, SmaregiInbox.processed_at)
                                          .where(SmaregiInbox.dedupe_key.in_(chunk))):
                found[row[0]] = tuple(row[1:])
    in_app(stack, query)
    return found


def epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite keeps the UTC value without its zone
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# -- phase 1: propagation ---------------------------------------------------------------------------
def prepare_stock(stack: Stack, chosen: list[str], readers) -> float:
    """Stocktake every chosen product to STOCK_LEVEL and wait until each channel shows it."""
    started = time.monotonic()
    for pid in chosen:
        stack.demo.smaregi.stocktake(pid, STOCK_LEVEL)

    def converged():
        stack.check_children()
        return all(read() == STOCK_LEVEL for pid in chosen for read in readers[pid].values())
    wait_until(converged, 180, 0.1, f"every channel to show {STOCK_LEVEL}")
    wait_until(lambda: dirty_listings(stack) == 0, 60, 0.1, "dirty listings to drain")
    return time.monotonic() - started


def run_sales(stack: Stack, chosen: list[str], readers, count: int) -> dict:
    smaregi = stack.demo.smaregi
    samples, misses, per_channel, webhook_ms, sales = [], 0, {k: [] for k in CHANNEL_KINDS}, [], []
    failed_sends = 0
    for n in range(count):
        pid = chosen[n % len(chosen)]
        wall0, t0 = time.time(), time.perf_counter()
        changes = smaregi.sell([(pid, 1)])
        t_ack = time.perf_counter()
        expected = changes[0].stock_amount
        send = smaregi.sends[-1]
        if not send.ok:
            failed_sends += 1
        webhook_ms.append((t_ack - t0) * 1000)
        seen: dict[str, float] = {}
        reads = readers[pid]
        while True:
            now = time.perf_counter()
            for kind, read in reads.items():
                if kind not in seen and read() == expected:
                    seen[kind] = now
            if len(seen) == len(reads) or now - t0 > SALE_TIMEOUT:
                break
            time.sleep(POLL_INTERVAL)
        for kind, at in seen.items():
            per_channel[kind].append((at - t0) * 1000)
        if len(seen) == len(reads):
            samples.append((max(seen.values()) - t0) * 1000)
        else:
            misses += 1
            log(f"sale {n + 1} of {pid}: not everywhere after {SALE_TIMEOUT:.0f} s "
                f"(seen: {sorted(seen)}, expected {expected})")
        sales.append({"wall0": wall0, "key": dedupe_key(send.payload["params"]),
                      "done_ms": samples[-1] if len(seen) == len(reads) else None})
        if (n + 1) % 50 == 0:
            log(f"  {n + 1}/{count} sales, p50 so far {percentile(samples, 50):.0f} ms")
            stack.check_children()

    # Where the time went: t0 → webhook stored → worker applied → last channel.
    rows = inbox_rows(stack, [s["key"] for s in sales])
    stored, applied, pushed = [], [], []
    for s in sales:
        row = rows.get(s["key"])
        if row is None or s["done_ms"] is None:
            continue
        received, processed = epoch(row[2]), epoch(row[3])
        if received is None or processed is None:
            continue
        stored.append((received - s["wall0"]) * 1000)
        applied.append((processed - received) * 1000)
        pushed.append(s["done_ms"] - (processed - s["wall0"]) * 1000)
    return {"samples": samples, "misses": misses, "per_channel": per_channel, "webhook_ms": webhook_ms,
            "failed_sends": failed_sends, "stage_stored": stored, "stage_applied": applied,
            "stage_pushed": pushed}


# -- phase 2: webhook acknowledgement under load ---------------------------------------------------
def run_ack_load(stack: Stack, chosen: list[str], rate: float, seconds: float, threads: int) -> dict:
    from stocklink.services import merchant_settings

    code = in_app(stack, lambda: merchant_settings.get("smaregi.customer_code"))
    out = stack.tmp / "ackload.json"
    child = stack.run("ackload", [sys.executable, str(ROOT / "bench" / "_ackload.py"),
                                  "--url", f"{stack.url}/webhooks/smaregi/{code}", "--rate", str(rate),
                                  "--seconds", str(seconds), "--threads", str(threads),
                                  "--products", ",".join(chosen), "--out", str(out)],
                      timeout=seconds * 3 + 120)
    load_ended = time.monotonic()
    if child.proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({child.proc.returncode}):\n{child.tail()}")
    data = json.loads(out.read_text())
    requests_ = data["requests"]
    answered = [r for r in requests_ if r["status"] is not None]
    statuses = Counter(r["status"] if r["status"] is not None else "error" for r in requests_)
    errors = Counter(r["error"].split(":")[0] for r in requests_ if r["error"])

    keys = {r["i"]: dedupe_key(r["params"]) for r in requests_}
    ok_keys = [keys[r["i"]] for r in requests_ if r["status"] == 200]
    rows = inbox_rows(stack, list(keys.values()))
    missing = [k for k in ok_keys if k not in rows]
    ids = [row[0] for row in rows.values()]

    def not_done() -> int:
        from sqlalchemy import func, select

        from stocklink.infra.extensions import db
        from stocklink.models import SmaregiInbox
        if not ids:
            return 0
        return in_app(stack, lambda: db.session.scalar(
            select(func.count()).select_from(SmaregiInbox)
            .where(SmaregiInbox.id.between(min(ids), max(ids)), SmaregiInbox.status != "done")))

    backlog_at_end = not_done()
    drain_s = None
    remaining = backlog_at_end
    while True:
        if remaining == 0:
            drain_s = time.monotonic() - load_ended
            break
        if time.monotonic() - load_ended > DRAIN_TIMEOUT:
            break
        time.sleep(0.5)
        remaining = not_done()
    final = inbox_rows(stack, list(keys.values()))
    statuses_in_inbox = Counter(row[1] for row in final.values())

    # Per second of the load: how latency developed while the workers fell behind (or not).
    by_second: dict[int, list[float]] = {}
    for r in answered:
        by_second.setdefault(int(r["sent_at_s"]), []).append(r["latency_ms"])
    return {
        "requests": len(requests_), "answered": len(answered), "statuses": dict(statuses), "errors": dict(errors),
        "latency": [r["latency_ms"] for r in answered], "due_latency": [r["due_latency_ms"] for r in answered],
        "elapsed_s": data["elapsed_s"], "missing": len(missing), "backlog_at_end": backlog_at_end,
        "not_done_after_drain": remaining, "drain_s": drain_s, "inbox_statuses": dict(statuses_in_inbox),
        "per_second_p99": [rounded(percentile(by_second[s], 99), 0) for s in sorted(by_second)],
        "latency_after_first_s": [r["latency_ms"] for r in answered if r["sent_at_s"] >= 1.0],
        "done_per_s": (backlog_at_end - remaining) / (time.monotonic() - load_ended),
    }


def failures(stack: Stack) -> dict[str, int]:
    """Failed RQ jobs and failed inbox rows, by their error's last line (a bench must notice)."""
    from rq.registry import FailedJobRegistry
    from sqlalchemy import func, select

    from stocklink.infra.extensions import db
    from stocklink.infra.queues import ALL_QUEUES, get_queue
    from stocklink.models import SmaregiInbox

    found: Counter = Counter()

    def collect():
        for name in ALL_QUEUES:
            queue = get_queue(name)
            registry = FailedJobRegistry(queue=queue)
            for job in queue.job_class.fetch_many(registry.get_job_ids(), connection=queue.connection):
                if job is not None:
                    last = (job.exc_info or "").strip().splitlines()[-1:] or ["?"]
                    found[f"job {name}: {last[0][:160]}"] += 1
        for error, count in db.session.execute(select(SmaregiInbox.error, func.count())
                                               .where(SmaregiInbox.error.is_not(None))
                                               .group_by(SmaregiInbox.error)):
            found[f"inbox row: {error.splitlines()[0][:160]}"] += count
    in_app(stack, collect)
    return dict(found)


# -- report --------------------------------------------------------------------------------------
def fmt(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"p50 {percentile(values, 50):.1f}  p95 {percentile(values, 95):.1f}  "
            f"p99 {percentile(values, 99):.1f}  max {max(values):.1f} ms (n={len(values)})")


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the bench like Ctrl-C: the stack's cleanup runs


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    log(f"propagation bench: {args.sales} sales; webhook load {args.rate:.0f} req/s for {args.seconds:.0f} s; "
        f"{args.workers} RQ workers; {os.cpu_count()} CPUs")
    version, sources = code_version(), source_fingerprint()
    load_at_start = os.getloadavg()[0]
    log(f"code {version}; load average {load_at_start:.2f} (other processes on this machine skew the figures)")
    with Stack(workers=args.workers, keep=args.keep, postgres=args.postgres) as stack:
        def drained():
            stack.check_children()
            return dirty_listings(stack) == 0
        wait_until(drained, 120, 0.2, "the initial pushes to drain")
        status, health = stack.health()
        log(f"initial pushes drained; /healthz {status} {health.get('checks')}")
        readers = channel_readers(stack)
        chosen = choose_products(stack, readers)
        took = prepare_stock(stack, chosen, readers)
        log(f"{len(chosen)} products stocktaken to {STOCK_LEVEL}; every channel showed it after {took:.1f} s")

        log(f"phase 1: {args.sales} POS sales, one at a time")
        prop = run_sales(stack, chosen, readers, args.sales)
        log(f"phase 2: webhook load, {args.rate:.0f} req/s for {args.seconds:.0f} s "
            f"({args.load_threads} keep-alive connections, separate process)")
        ack = run_ack_load(stack, chosen, args.rate, args.seconds, args.load_threads)
        stack.check_children()
        database = stack.database
        failed = failures(stack)
    source_changed = source_fingerprint() != sources

    non_200 = ack["requests"] - ack["statuses"].get(200, 0)
    lost = ack["missing"] + ack["not_done_after_drain"]
    result = {
        "propagation_p50_ms": rounded(percentile(prop["samples"], 50)),
        "propagation_p95_ms": rounded(percentile(prop["samples"], 95)),
        "ack_p50_ms": rounded(percentile(ack["latency"], 50), 2),
        "ack_p99_ms": rounded(percentile(ack["latency"], 99), 2),
        "lost": lost,
        "sales": args.sales,
        "propagation_misses": prop["misses"],
        "propagation_p99_ms": rounded(percentile(prop["samples"], 99)),
        "propagation_max_ms": rounded(max(prop["samples"], default=None)),
        "requests": ack["requests"],
        "rps_achieved": round(ack["requests"] / ack["elapsed_s"], 1) if ack["elapsed_s"] else None,
        "non_200": non_200,
        "ack_max_ms": rounded(max(ack["latency"], default=None), 2),
        "ack_due_p99_ms": rounded(percentile(ack["due_latency"], 99), 2),
        "ack_p99_after_first_s_ms": rounded(percentile(ack["latency_after_first_s"], 99), 2),
        "lost_missing": ack["missing"],
        "lost_not_done": ack["not_done_after_drain"],
        "inbox_backlog_at_load_end": ack["backlog_at_end"],
        "drain_s": rounded(ack["drain_s"]),
        "inbox_done_per_s": rounded(ack["done_per_s"]),
        "database": database,
        "failed_jobs": sum(failed.values()),
        "code": version,
        "loadavg_at_start": round(load_at_start, 2),
        "source_changed_during_run": source_changed,
    }
    result["goals_met"] = bool(
        result["propagation_p95_ms"] is not None and result["propagation_p95_ms"] <= GOALS["propagation_p95_ms"]
        and prop["misses"] == 0
        and result["ack_p99_ms"] is not None and result["ack_p99_ms"] <= GOALS["ack_p99_ms"]
        and lost == GOALS["lost"])

    print()
    print(f"Propagation, POS sale → all 3 channels ({args.sales} sales, {prop['misses']} misses):")
    print(f"  all channels   {fmt(prop['samples'])}    goal p95 ≤ {GOALS['propagation_p95_ms']} ms")
    for kind in CHANNEL_KINDS:
        print(f"  {kind:<14} {fmt(prop['per_channel'][kind])}")
    print(f"  sell() (webhook answered) {fmt(prop['webhook_ms'])}; non-OK sends {prop['failed_sends']}")
    print("  stages (wall clocks of separate processes, ±1 ms):")
    print(f"    t0 → inbox row stored        {fmt(prop['stage_stored'])}")
    print(f"    stored → worker applied      {fmt(prop['stage_applied'])}")
    print(f"    applied → last channel seen  {fmt(prop['stage_pushed'])}")
    print(f"Webhook ack under load ({ack['requests']} requests at {args.rate:.0f}/s target, "
          f"{result['rps_achieved']}/s achieved):")
    print(f"  latency        {fmt(ack['latency'])}    goal p99 ≤ {GOALS['ack_p99_ms']} ms")
    print(f"  from due time  {fmt(ack['due_latency'])}")
    print(f"  after 1st s    {fmt(ack['latency_after_first_s'])}")
    print(f"  p99 per second of load: {ack['per_second_p99']}")
    print(f"  statuses {ack['statuses']}" + (f"; errors {ack['errors']}" if ack["errors"] else ""))
    drained = f"{ack['drain_s']:.1f} s" if ack["drain_s"] is not None else f"> {DRAIN_TIMEOUT:.0f} s"
    print(f"  inbox: {ack['missing']} answered 200 but not stored; backlog at load end {ack['backlog_at_end']}; "
          f"not done {DRAIN_TIMEOUT:.0f} s later {ack['not_done_after_drain']}; "
          f"drained in {drained}; "
          f"workers applied {ack['done_per_s']:.1f} rows/s; statuses {ack['inbox_statuses']}")
    print(f"  lost {lost}    goal {GOALS['lost']}")
    for what, count in sorted(failed.items(), key=lambda kv: -kv[1]):
        print(f"FAILED {count} x {what}")
    if source_changed:
        print("WARNING: stocklink/ source files changed during the run: the figures may mix two versions")
    print(f"Goals met: {result['goals_met']}")
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        sys.exit(130)
