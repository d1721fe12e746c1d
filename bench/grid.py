"""Product grid bench (seed 004, SPEC §8): server time of every grid filter, of a deep page and of
an inline edit on a large catalogue, on SQLite and PostgreSQL; a channel catalogue import with
auto-link, and the read-back's speed, over the NextEngine sandbox on loopback.

    .venv/bin/python bench/grid.py [--quick] [--database-url postgresql://…]

The data set: ``--size`` products (100,000; ``--quick`` 10,000), one in a hundred a set of two
components, and four channels. Three channels' listings are bulk-inserted (Core executemany,
then ``search_text.refresh_products()`` / ``refresh_listings()``): some off sync, some with a
difference, some with a link problem, some unlinked. The fourth channel is a NextEngine sandbox
holding one goods record per product: ``import_s`` is its catalogue import and auto-link through
:func:`stocklink.services.catalogue_import.import_channel` (``pace_s=0``), committed chunk by
chunk as the import job does, then the statistics refresh the job runs after a large import
(:func:`~stocklink.services.catalogue_import.after_import`). ``reconcile_items_per_s`` is the read-back of that channel
(:func:`stocklink.services.read_back.read_back_channel`, every listing due, the budget lifted by a
long ``interval_s`` and no pause between requests): listings compared per second.

Server time is measured in process with the Flask test client, logged in: the time from request
to full response body for each of ``--requests`` requests (after two warm-up requests), p95 by
nearest rank. PostgreSQL runs on the server of ``--database-url`` or ``BENCH_PG_URL`` in a new
database created for the run and dropped after it; without either URL the PostgreSQL figures
are null. Each database runs in a child process of its own (a fresh app, nothing shared).

Prints a per-filter breakdown; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "bench"):  # stocklink, and the benches' shared helpers beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _harness import code_version, log, percentile, rounded  # noqa: E402

GOALS = {"filter_p95_ms": 150.0, "import_s": 60.0}
NAMES = ["Tシャツ", "リネンシャツ", "マグカップ", "トートバッグ", "ソックス", "パーカー", "キャップ", "ハンカチ"]
COLOURS = ["ホワイト", "ブラック", "ネイビー", "グレー", "ベージュ"]
SIZES = ["S", "M", "L", "XL"]
READ_BACK_LIMIT = 20_000  # listings read back (its speed per listing does not depend on the total)
PASSWORD = "bench-password-not-secret"


# -- the data set ------------------------------------------------------------------------------
def code_of(i: int) -> str:
    return f"BK{i:07d}"


def build_catalogue(size: int) -> dict:
    """Products, set components and three bulk channels' listings; returns the channel ids."""
    from sqlalchemy import insert

    from stocklink.infra.extensions import db
    from stocklink.models import Channel, Listing, Product, SetComponent
    from stocklink.models._types import utcnow
    from stocklink.services import search_text

    now = utcnow()
    rng = random.Random(13)
    products = []
    for i in range(1, size + 1):
        products.append({"id": i, "smaregi_product_id": str(1_000_000 + i), "product_code": code_of(i),
                         "name": NAMES[i % len(NAMES)], "variation": f"{COLOURS[i % 5]} / {SIZES[i % 4]}",
                         "group_code": f"G{i // 10:06d}", "is_set": i % 100 == 0, "stock_managed": True,
                         "smaregi_stock": rng.randint(0, 60), "reserved": 0, "search_text": "",
                         "created_at": now, "updated_at": now})
    for start in range(0, size, 5000):
        db.session.execute(insert(Product), products[start:start + 5000])
    components = [{"set_product_id": i, "component_id": i - k, "quantity": k} for i in range(100, size + 1, 100)
                  for k in (1, 2)]
    db.session.execute(insert(SetComponent), components)
    channel_ids = {}
    for kind, name in (("colorme", "カラーミー"), ("shopify", "Shopify"), ("colorme", "カラーミー2号店")):
        channel = Channel(kind=kind, name=name, base_url="http://127.0.0.1:9", settings={})
        db.session.add(channel)
        db.session.flush()
        channel_ids[name] = channel.id
    for n, channel_id in enumerate(channel_ids.values()):
        rows = []
        for product in products:
            i = product["id"]
            unlinked = (i + n) % 50 == 7
            rows.append({"channel_id": channel_id, "product_id": None if unlinked else i,
                         "identifier": f"{channel_id}-{i}", "sku": code_of(i), "title": product["name"],
                         "sync_enabled": (i + n) % 20 != 3, "reserve": 0, "ratio_percent": 100, "dirty": False,
                         "pending_delta": 0, "link_problem": "no_match" if unlinked else
                         ("multiple" if (i + n) % 211 == 5 else None),
                         "difference": (i + n) % 97 == 11, "last_confirmed_quantity": product["smaregi_stock"],
                         "last_confirmed_at": now, "channel_attributes": {}, "search_text": "", "created_at": now})
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(Listing), rows[start:start + 5000])
    db.session.commit()
    search_text.refresh_listings()
    search_text.refresh_products()
    db.session.commit()
    return channel_ids


def nextengine_channel(app, size: int):
    """A NextEngine sandbox on loopback with one goods record per product, and its channel row."""
    from stocklink.infra.extensions import db
    from stocklink.models import Channel
    from stocklink.sandbox.nextengine import NextEngineSandbox
    from stocklink.sandbox.nextengine import create_app as nextengine_app
    from stocklink.sandbox.server import serve_in_thread
    from stocklink.services.channel_clients import save_credentials

    sandbox = NextEngineSandbox(auto_process=True)
    rng = random.Random(4)
    for i in range(1, size + 1):
        sandbox.add_goods(code_of(i), rng.randint(0, 60), name=NAMES[i % len(NAMES)])
    served = nextengine_app(sandbox)
    served.wsgi_app = SandboxClock(served.wsgi_app)
    server = serve_in_thread(served)
    sandbox.url = server.url
    channel = Channel(kind="nextengine", name="ネクストエンジン", base_url=sandbox.url, settings={})
    db.session.add(channel)
    save_credentials(channel, sandbox.login(), by_merchant=True)
    db.session.commit()
    return server, channel.id, served.wsgi_app


class SandboxClock:
    """WSGI middleware summing the time the sandbox spends answering (its own cost, not stocklink's)."""

    def __init__(self, app):
        self.app, self.seconds = app, 0.0

    def __call__(self, environ, start_response):
        t0 = time.perf_counter()
        body = b"".join(self.app(environ, start_response))
        self.seconds += time.perf_counter() - t0
        return [body]


def run_import(channel_id: int) -> tuple[float, object]:
    from stocklink.infra.extensions import db
    from stocklink.models import Channel
    from stocklink.services.catalogue_import import after_import, import_channel
    from stocklink.services.channel_clients import make_channel_client

    channel = db.session.get(Channel, channel_id)
    started = time.perf_counter()
    counts = import_channel(channel, make_channel_client(channel), lambda _c: db.session.commit(), pace_s=0)
    db.session.commit()
    after_import(counts)  # as the import job does once it has committed
    return time.perf_counter() - started, counts


def run_read_back(channel_id: int, size: int) -> tuple[float, int]:
    """``size`` listings of the channel due (never confirmed), one run with the budget lifted."""
    from sqlalchemy import select, update

    from stocklink.infra.extensions import db
    from stocklink.models import Channel, Listing
    from stocklink.services.channel_clients import make_channel_client
    from stocklink.services.read_back import read_back_channel

    due = select(Listing.id).where(Listing.channel_id == channel_id).order_by(Listing.id).limit(size)
    db.session.execute(update(Listing).where(Listing.id.in_(due.scalar_subquery())).values(last_confirmed_at=None))
    db.session.commit()
    channel = db.session.get(Channel, channel_id)
    started = time.perf_counter()
    run = read_back_channel(channel, make_channel_client(channel), interval_s=float(size), pause=lambda _s: None)
    return time.perf_counter() - started, run.read


# -- the requests --------------------------------------------------------------------------------
def filters(channel_ids: dict, deep_page: int) -> list[tuple[str, str]]:
    cm = channel_ids["カラーミー"]
    return [
        ("all", "/products/"),
        ("kind=set", "/products/?kind=set"),
        ("channel", f"/products/?channel={cm}"),
        ("keyword", "/products/?q=Tシャツ"),
        ("keyword a,b", "/products/?q=Tシャツ,ホワイト"),
        ("keyword half-width", "/products/?q=ｔｼｬﾂ,ﾎﾜｲﾄ"),
        ("keyword code", f"/products/?q={code_of(4321)}"),
        ("keyword none", "/products/?q=ありえない商品"),
        ("total exact", "/products/?total=5"),
        ("total range", "/products/?total_min=10&total_max=20"),
        ("link linked", "/products/?link=linked"),
        ("link unlinked", "/products/?link=unlinked"),
        ("link problem", "/products/?link=problem"),
        ("channel+unlinked", f"/products/?channel={cm}&link=unlinked"),
        ("sync on", "/products/?sync=on"),
        ("sync off", "/products/?sync=off"),
        ("channel+sync off", f"/products/?channel={cm}&sync=off"),
        ("difference", "/products/?diff=1"),
        ("channel+difference", f"/products/?channel={cm}&diff=1"),
        ("all filters", f"/products/?channel={cm}&q=Tシャツ&total_min=0&total_max=40&link=linked&sync=on"),
        (f"page {deep_page}", f"/products/?page={deep_page}"),
        (f"page {deep_page} (htmx)", f"/products/?page={deep_page}|htmx"),
    ]


def timed(call, n: int) -> list[float]:
    for _ in range(2):
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def log_in(app, client) -> str:
    import re

    from stocklink.infra.extensions import db
    from stocklink.models import User

    with app.app_context():
        user = User(username="bench")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    response = client.post("/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError(f"log in failed: {response.status_code}")
    return re.search(r'name="csrf_token" value="([^"]+)"',
                     client.get("/products/?q=none-at-all").get_data(as_text=True)).group(1)


def measure(app, channel_ids: dict, deep_page: int, n: int) -> dict:
    from sqlalchemy import select

    from stocklink.infra.extensions import db
    from stocklink.models import Listing

    client = app.test_client()
    token = log_in(app, client)
    # The bench's own objects (the sandbox's goods, the rows it built) would make every full
    # collection of this process slower than a web server's: set them aside before timing.
    gc.collect()
    gc.freeze()
    results = {}
    for name, url in filters(channel_ids, deep_page):
        headers = {}
        if url.endswith("|htmx"):
            url, headers = url[:-5], {"HX-Request": "true"}

        def get(url=url, headers=headers):
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code}")
            return response.get_data()
        samples = timed(get, n)
        results[name] = {"samples": samples, "url": url}
        log(f"  {name:<22} p50 {percentile(samples, 50):7.1f}  p95 {percentile(samples, 95):7.1f} ms")
    with app.app_context():
        listing_id = db.session.scalar(select(Listing.id).where(
            Listing.channel_id == channel_ids["カラーミー"], Listing.product_id.is_not(None),
            Listing.product_id > len(NAMES) * 7).order_by(Listing.id).limit(1))
    values = iter(range(1, 10_000))

    def edit():
        response = client.post(f"/products/listings/{listing_id}/min_stock",
                               data={"value": str(next(values) % 9), "csrf_token": token, "next": "/products/",
                                     "channel": str(channel_ids["カラーミー"])},
                               headers={"HX-Request": "true"})
        if response.status_code != 200:
            raise RuntimeError(f"inline edit: {response.status_code}")
    samples = timed(edit, n)
    results["inline edit (min)"] = {"samples": samples, "url": f"POST /products/listings/{listing_id}/min_stock"}
    log(f"  {'inline edit (min)':<22} p50 {percentile(samples, 50):7.1f}  p95 {percentile(samples, 95):7.1f} ms")
    return results


# -- one database, in a child process ----------------------------------------------------------------
def child(args) -> int:
    import flask_migrate

    from stocklink.infra.queues import start_embedded_redis

    tmp = Path(tempfile.mkdtemp(prefix="stocklink-grid-bench-"))
    instance = tmp / "instance"
    instance.mkdir()
    redis, redis_url = start_embedded_redis(str(instance))
    os.environ.update({"STOCKLINK_INSTANCE_PATH": str(instance), "DATABASE_URL": args.child_url,
                       "REDIS_URL": redis_url, "SECRET_KEY": secrets.token_urlsafe(48)})
    from stocklink import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandbox's request log

    app = create_app()
    out: dict = {}
    with app.app_context():
        flask_migrate.upgrade()
        from stocklink.infra.extensions import db
        log(f"{args.size:,} products x 3 bulk channels ({db.engine.dialect.name})")
        t0 = time.perf_counter()
        channel_ids = build_catalogue(args.size)
        out["build_s"] = time.perf_counter() - t0
        log(f"  inserted and search text refreshed in {out['build_s']:.1f} s")
        t0 = time.perf_counter()
        server, ne_id, clock = nextengine_channel(app, args.size)
        log(f"  NextEngine sandbox holds {args.size:,} goods ({time.perf_counter() - t0:.1f} s)")
        try:
            out["import_s"], counts = run_import(ne_id)
            out["import_sandbox_s"], clock.seconds = clock.seconds, 0.0
            out["import_counts"] = {"created": counts.created, "linked": counts.linked, "problems": counts.problems}
            log(f"  import + auto-link: {out['import_s']:.1f} s ({counts.created:,} created, "
                f"{counts.linked:,} linked; the sandbox's own answering {out['import_sandbox_s']:.1f} s of it)")
            took, read = run_read_back(ne_id, min(args.size, READ_BACK_LIMIT))
            out["reconcile_s"], out["reconcile_items"] = took, read
            out["reconcile_sandbox_s"] = clock.seconds
            out["reconcile_items_per_s"] = read / took if took else None
            log(f"  read-back: {read:,} listings in {took:.1f} s ({out['reconcile_items_per_s']:.0f}/s; "
                f"the sandbox's own answering {clock.seconds:.1f} s of it)")
        finally:
            server.stop()
        channel_ids["ネクストエンジン"] = ne_id
        out["dialect"] = db.engine.dialect.name
    out["filters"] = {name: {"p50_ms": rounded(percentile(r["samples"], 50)),
                             "p95_ms": rounded(percentile(r["samples"], 95)),
                             "max_ms": rounded(max(r["samples"])), "n": len(r["samples"]), "url": r["url"]}
                      for name, r in measure(app, channel_ids, args.page, args.requests).items()}
    redis.shutdown()
    print(json.dumps(out, ensure_ascii=False))
    return 0


def run_child(args, url: str) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--child-url", url, "--size", str(args.size),
            "--page", str(args.page), "--requests", str(args.requests)]
    proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line, flush=True)
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the {url.split(':')[0]} run failed ({proc.returncode})")
    return json.loads(lines[-1])


class ScratchDatabase:
    """A new database on the PostgreSQL server of ``url``, dropped on exit."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        base = sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://", 1)
                                  if url.startswith("postgresql://") else url)
        self.admin = base.set(database="postgres")
        self.name = f"stocklink_grid_bench_{secrets.token_hex(4)}"
        self.url = base.set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> str:
        engine = self.sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(self.sa.text(f'CREATE DATABASE "{self.name}"'))
        engine.dispose()
        return self.url

    def __exit__(self, *exc) -> None:
        engine = self.sa.create_engine(self.admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(self.sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        engine.dispose()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 products, page 50")
    parser.add_argument("--size", type=int, help="products (default 100,000; --quick 10,000)")
    parser.add_argument("--page", type=int, help="the deep page measured (default 500; --quick 50)")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per filter (default 20)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_PG_URL", ""),
                        help="a PostgreSQL server to run on (default $BENCH_PG_URL); a scratch database is "
                             "created there and dropped")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--child-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = args.size or (10_000 if args.quick else 100_000)
    args.page = args.page or (50 if args.quick else 500)
    args.requests = max(args.requests, 20)
    return args


def worst(result: dict | None) -> float | None:
    if not result:
        return None
    return max(f["p95_ms"] for name, f in result["filters"].items() if name != "inline edit (min)")


def edit_p95(result: dict | None) -> float | None:
    return ((result or {}).get("filters", {}).get("inline edit (min)") or {}).get("p95_ms")


def main() -> int:
    args = parse_args()
    if args.child_url:
        return child(args)
    log(f"grid bench: {args.size:,} products x 4 channels; page {args.page}; {args.requests} requests per filter; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; code {code_version()}")
    results: dict[str, dict | None] = {"sqlite": None, "postgresql": None}
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="stocklink-grid-sqlite-") as tmp:
            results["sqlite"] = run_child(args, f"sqlite:///{tmp}/stocklink.db")
    if args.database_url:
        with ScratchDatabase(args.database_url) as url:
            results["postgresql"] = run_child(args, url)
    else:
        log("no PostgreSQL URL (--database-url or BENCH_PG_URL): the PostgreSQL figures are null")

    print()
    names = list(next(r for r in results.values() if r)["filters"]) if any(results.values()) else []
    print(f"Grid server time, p95 (p50) ms over {args.requests} requests; goal p95 ≤ {GOALS['filter_p95_ms']:.0f} ms")
    print(f"  {'filter':<24}{'sqlite':>18}{'postgresql':>18}")
    for name in names:
        cells = []
        for db_name in ("sqlite", "postgresql"):
            f = (results[db_name] or {}).get("filters", {}).get(name)
            cells.append(f"{f['p95_ms']:8.1f} ({f['p50_ms']:6.1f})" if f else f"{'n/a':>17}")
        print(f"  {name:<24}{cells[0]:>18}{cells[1]:>18}")
    for db_name, r in results.items():
        if r:
            print(f"{db_name}: import + auto-link {r['import_s']:.1f} s (goal ≤ {GOALS['import_s']:.0f} s; "
                  f"{r['import_sandbox_s']:.1f} s of it the sandbox answering); "
                  f"read-back {r['reconcile_items']:,} listings in {r['reconcile_s']:.1f} s "
                  f"= {r['reconcile_items_per_s']:.0f}/s; data set built in {r['build_s']:.1f} s")
    primary = results["sqlite"] or results["postgresql"] or {}
    result = {
        "grid_p95_ms_sqlite": worst(results["sqlite"]),
        "grid_p95_ms_postgresql": worst(results["postgresql"]),
        "import_s": rounded(primary.get("import_s")),
        "reconcile_items_per_s": rounded(primary.get("reconcile_items_per_s"), 0),
        "import_sandbox_s": rounded(primary.get("import_sandbox_s")),
        "import_s_postgresql": rounded((results["postgresql"] or {}).get("import_s")),
        "reconcile_items_per_s_postgresql": rounded((results["postgresql"] or {}).get("reconcile_items_per_s"), 0),
        "edit_p95_ms_sqlite": edit_p95(results["sqlite"]),
        "edit_p95_ms_postgresql": edit_p95(results["postgresql"]),
        "products": args.size, "channels": 4, "deep_page": args.page, "requests_per_filter": args.requests,
        "code": code_version(), "cpus": os.cpu_count(),
    }
    measured = [v for v in (result["grid_p95_ms_sqlite"], result["grid_p95_ms_postgresql"]) if v is not None]
    result["goals_met"] = bool(measured and max(measured) <= GOALS["filter_p95_ms"]
                               and result["import_s"] is not None and result["import_s"] <= GOALS["import_s"])
    print(f"Goals met: {result['goals_met']}")
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
