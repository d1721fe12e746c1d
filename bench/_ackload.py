"""Open-loop load generator for Smaregi's webhook, run as its own process by bench/propagation.py.

Sends legacy 在庫情報送信 notifications (form field ``params``) to ``--url`` at ``--rate``
requests/s for ``--seconds``: request ``i`` is due at ``start + i / rate`` and is sent by the
next free thread of a pool, each thread on its own keep-alive connection (``http.client``,
so the client adds little to what is measured). Every body is unique (``stockAmount`` and
``updDateTime`` vary), so none is deduplicated by stocklink.

Writes one JSON document to ``--out``: per request its ``params`` string, HTTP status (or
``null`` with ``error``), latency from the moment it was sent (``latency_ms``) and from the
moment it was due (``due_latency_ms``: includes waiting for a free thread).
"""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit

JST = timezone(timedelta(hours=9))
HEADERS = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}


def params_for(i: int, product_id: str) -> str:
    """One valid notification, a 1-piece POS sale (在庫区分 02) at store 1, unique through ``i``."""
    row = {"storeId": "1", "productId": product_id, "amount": "-1", "stockAmount": str(100000 + i),
           "layawayStockAmount": "0", "stockDivision": "02", "fromStoreId": "", "toStoreId": "",
           "updDateTime": datetime.now(JST).strftime("%Y-%m-%d %H:%M:%S")}
    return json.dumps({"data": [{"table_name": "Stock", "rows": [row]}]}, ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the full webhook URL")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=48)
    parser.add_argument("--products", required=True, help="comma-separated Smaregi product ids")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    target = urlsplit(args.url)
    path = target.path
    products = args.products.split(",")
    total = int(args.rate * args.seconds)
    results: list[dict | None] = [None] * total
    counter = iter(range(total))
    counter_lock = threading.Lock()
    start = time.perf_counter() + 0.5  # let every thread connect first

    def connect() -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        conn.connect()
        return conn

    def post(conn, body: bytes) -> tuple[int, bytes]:
        conn.request("POST", path, body=body, headers=HEADERS)
        response = conn.getresponse()
        return response.status, response.read()

    def run() -> None:
        conn = connect()
        while True:
            with counter_lock:
                i = next(counter, None)
            if i is None:
                break
            params = params_for(i, products[i % len(products)])
            body = urlencode({"params": params}).encode("ascii")
            due = start + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            status, error = None, None
            try:
                try:
                    status, _ = post(conn, body)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    # The server closed an idle keep-alive connection before this request reached it.
                    conn.close()
                    conn = connect()
                    sent = time.perf_counter()
                    status, _ = post(conn, body)
            except Exception as exc:  # a failed request is a result, not a crash
                error = f"{type(exc).__name__}: {exc}"[:200]
                conn.close()
                conn = connect()
            done = time.perf_counter()
            results[i] = {"i": i, "params": params, "status": status, "error": error,
                          "latency_ms": (done - sent) * 1000, "due_latency_ms": (done - due) * 1000,
                          "sent_at_s": sent - start}
        conn.close()

    threads = [threading.Thread(target=run, name=f"load-{n}") for n in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = max((r["sent_at_s"] for r in results if r), default=0.0)
    with open(args.out, "w") as fh:
        json.dump({"requests": [r for r in results if r], "elapsed_s": elapsed, "rate": args.rate,
                   "seconds": args.seconds, "threads": args.threads}, fh)


if __name__ == "__main__":
    main()
