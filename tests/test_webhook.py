"""POST /webhooks/smaregi/<customer code>: authenticate, store once, answer at once (SPEC §4, §11.1)."""
from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from stocklink.infra.extensions import db
from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis
from stocklink.jobs.inbox import sweep_inbox
from stocklink.models import SmaregiInbox
from stocklink.models._types import utcnow
from tests.conftest import wait_for
from tests.e2e_helpers import CONTRACT, CUSTOMER_CODE, inbox_rows, ledger_count, stock_of, use_generation

pytest_plugins = ["tests.fixtures_platforms"]

URL = f"/webhooks/smaregi/{CUSTOMER_CODE}"
A = "8100001"


def legacy_form(*rows: dict, **extra) -> dict:
    """A legacy 在庫情報送信 form body as Smaregi posts it (doc §2.2)."""
    params = {"data": [{"table_name": "Stock", "rows": list(rows)}]}
    return {"proc_name": "stock_upd", "params": json.dumps(params, ensure_ascii=False), **extra}


def sale_row(product_id: str = A, amount: int = -1, after: int = 9) -> dict:
    return {"storeId": "1", "productId": product_id, "amount": str(amount), "stockAmount": str(after),
            "layawayStockAmount": "0", "stockDivision": "02", "updDateTime": "2026-05-01 10:00:00"}


def platform_headers(event_id: str = "evt-0001", contract: str = CONTRACT, **extra) -> dict:
    return {"Content-Type": "application/json", "Smaregi-Event": "pos:stock", "Smaregi-Event-Id": event_id,
            "Smaregi-Contract-Id": contract, **extra}


def platform_body(contract: str = CONTRACT, product_id: str = A) -> bytes:
    return json.dumps({"contractId": contract, "event": "pos:stock", "action": "edited",
                       "ids": [{"id": "77", "productId": product_id, "storeId": "1"}]}).encode()


def stored(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(SmaregiInbox.id)))


def queued_job_ids(app) -> list[str]:
    with app.app_context():
        return get_queue(WEBHOOKS).job_ids


@pytest.fixture
def configured(app, smaregi):
    """stocklink configured for the sandbox contract; product A linked nowhere yet."""
    return smaregi


def test_wrong_customer_code_is_code_mismatch(app, client, configured):
    """A wrong customer code is answered 400 ``code_mismatch`` (seed 001) and nothing is stored."""
    response = client.post("/webhooks/smaregi/not-the-code", data=legacy_form(sale_row()))
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "code_mismatch"
    assert stored(app) == 0 and queued_job_ids(app) == []


def test_no_customer_code_configured_rejects_everything(app, client):
    """Before the merchant saves a customer code, every notification is ``code_mismatch``."""
    response = client.post("/webhooks/smaregi/anything", data=legacy_form(sale_row()))
    assert (response.status_code, response.get_data(as_text=True)) == (400, "code_mismatch")
    assert stored(app) == 0


@pytest.mark.parametrize(("form", "reason"), [
    ({}, "params is missing"),
    ({"params": "{not json"}, "params is not JSON"),
    ({"params": json.dumps({"data": "Stock"})}, "params.data is not a list"),
    (legacy_form(sale_row(product_id="12ab")), "productId must be 1-15 ASCII digits"),
    (legacy_form({**sale_row(), "amount": "many"}), "amount is not an integer"),
    # Unicode digits that str.isdigit() and int() accept: superscript, Arabic-Indic, full-width.
    (legacy_form(sale_row(product_id="²")), "productId must be 1-15 ASCII digits: '²'"),
    (legacy_form(sale_row(product_id="١٢٣")), "productId must be 1-15 ASCII digits: '١٢٣'"),
    (legacy_form(sale_row(product_id="１２３")), "productId must be 1-15 ASCII digits: '１２３'"),
    (legacy_form(sale_row(product_id="1" * 16)), "productId must be 1-15 ASCII digits"),
    (legacy_form(sale_row(product_id="9" * 40)), "productId must be 1-15 ASCII digits"),
    (legacy_form(sale_row(product_id="-1")), "productId must be 1-15 ASCII digits"),
    (legacy_form({**sale_row(), "storeId": "1234567890"}), "storeId must be 1-9 ASCII digits"),
    (legacy_form({**sale_row(), "storeId": ["1"]}), "storeId must be a string"),
    (legacy_form({**sale_row(), "productId": True}), "productId must be a string"),
    (legacy_form({**sale_row(), "productId": {"id": "1"}}), "productId must be a string"),
    (legacy_form({**sale_row(), "amount": "１"}), "amount is not an integer"),
    (legacy_form({**sale_row(), "amount": "9" * 40}), "amount is not an integer"),
    (legacy_form({**sale_row(), "stockAmount": "1000000000"}), "stockAmount is not an integer within"),
    (legacy_form({**sale_row(), "stockDivision": "２"}), "stockDivision must be 1-2 ASCII digits"),
    (legacy_form({**sale_row(), "updDateTime": 20260501}), "updDateTime must be a string"),
    (legacy_form(sale_row(), proc_name="x" * 65), "proc_name must be a string of at most 64"),
    ({"params": "[" * 1000 + "]" * 1000}, "JSON is nested deeper than 16 levels"),
    ({"params": '{"data":' + "[" * 5000}, "JSON is nested deeper than 16 levels"),
    ({"params": "1" * 5000}, "params is not JSON"),  # beyond int()'s digit limit
])
def test_malformed_legacy_params_are_400_with_a_reason(app, client, configured, form, reason):
    """A legacy body stocklink cannot read is answered 400 ``malformed: <reason>``; nothing is stored."""
    response = client.post(URL, data=form)
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith("malformed: ")
    assert reason in response.get_data(as_text=True)
    assert stored(app) == 0 and queued_job_ids(app) == []


@pytest.mark.parametrize(("headers", "body", "reason"), [
    (platform_headers(), b"{not json", "body is not JSON"),
    (platform_headers(), json.dumps({"event": "pos:stock", "ids": []}).encode(), "contractId is missing"),
    (platform_headers(), json.dumps({"contractId": CONTRACT, "ids": "8100001"}).encode(), "ids is not a list"),
    ({k: v for k, v in platform_headers().items() if k != "Smaregi-Event-Id"}, platform_body(),
     "Smaregi-Event-Id header is missing or too long"),
    (platform_headers(event_id="x" * 65), platform_body(), "Smaregi-Event-Id header is missing or too long"),
    (platform_headers(), b"\xff\xfe{}", "body is not JSON"),
    # 2 KB at depth 1,000 used to exhaust json's recursion: HTTP 500.
    (platform_headers(), b"[" * 1000 + b"]" * 1000, "JSON is nested deeper than 16 levels"),
    (platform_headers(), json.dumps({"contractId": CONTRACT, "x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}).encode(),
     "JSON is nested deeper than 16 levels"),
    (platform_headers(), json.dumps({"contractId": ["a"]}).encode(), "contractId must be a string"),
    (platform_headers(), platform_body(product_id="１２３"), "ids[].productId must be 1-15 ASCII digits: '１２３'"),
    (platform_headers(), platform_body(product_id="9" * 40), "ids[].productId must be 1-15 ASCII digits"),
    (platform_headers(), json.dumps({"contractId": CONTRACT, "ids": [{"id": "7", "storeId": "1"}]}).encode(),
     "ids[].productId is missing"),
    (platform_headers(), json.dumps({"contractId": CONTRACT, "ids": [{"id": "x7", "productId": "1"}]}).encode(),
     "ids[].id must be 1-19 ASCII digits"),
    (platform_headers(), json.dumps({"contractId": CONTRACT, "ids": [{"productId": 1.5}]}).encode(),
     "ids[].productId must be a string"),
    (platform_headers(), json.dumps({"contractId": CONTRACT, "ids": ["8100001"]}).encode(), "ids[] must be objects"),
])
def test_malformed_platform_webhooks_are_400_with_a_reason(app, client, configured, headers, body, reason):
    """A Platform webhook with a broken body or without its event id is 400 with a reason; nothing stored."""
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_data(as_text=True).startswith(f"malformed: {reason}")
    assert stored(app) == 0 and queued_job_ids(app) == []


@pytest.mark.parametrize("where", ["body", "header"])
def test_platform_contract_mismatch_is_400(app, client, configured, where):
    """A Platform webhook of another contract (in the body or the header) is refused and not stored."""
    if where == "body":
        response = client.post(URL, data=platform_body(contract="sb_other"), headers=platform_headers())
    else:
        response = client.post(URL, data=platform_body(), headers=platform_headers(contract="sb_other"))
    assert (response.status_code, response.get_data(as_text=True)) == (400, "contract_mismatch")
    assert stored(app) == 0


def queued_functions(app) -> list[str]:
    with app.app_context():
        return [job.func_name for job in get_queue(WEBHOOKS).jobs]


def test_valid_legacy_notification_is_stored_and_wakes_the_inbox(app, client, configured):
    """A valid legacy notification is answered 200 ``{"result":"ok"}`` with one inbox row and a drain
    queued; more notifications while that drain waits queue nothing more."""
    response = client.post(URL, data=legacy_form(sale_row()))
    assert response.status_code == 200
    assert response.get_json() == {"result": "ok"}
    [(_inbox_id, generation, status)] = inbox_rows(app)
    assert (generation, status) == ("legacy", "received")
    assert queued_functions(app) == ["stocklink.jobs.inbox.process_inbox"]
    for after in (8, 7):
        assert client.post(URL, data=legacy_form(sale_row(after=after))).status_code == 200
    assert [s for _id, _g, s in inbox_rows(app)] == ["received"] * 3
    assert queued_functions(app) == ["stocklink.jobs.inbox.process_inbox"]


def test_a_notification_after_the_drain_started_queues_the_next(app, client, configured):
    """The drain clears the wake before it looks for rows, so a row stored after that queues another."""
    from stocklink.jobs.inbox import WAKE_KEY
    client.post(URL, data=legacy_form(sale_row()))
    with app.app_context():
        get_redis().delete(WAKE_KEY)  # what a starting drain does first
    client.post(URL, data=legacy_form(sale_row(after=8)))
    assert queued_functions(app) == ["stocklink.jobs.inbox.process_inbox"] * 2


def test_a_send_without_stock_rows_is_stored_as_ignored(app, client, configured):
    """A legacy send of another table (no productId rows) is acknowledged, kept as ``ignored``, not queued."""
    params = {"data": [{"table_name": "Transaction", "rows": [{"transactionHeadId": "1"}]}]}
    response = client.post(URL, data={"proc_name": "transaction_upd", "params": json.dumps(params)})
    assert response.status_code == 200
    [(_id, _generation, status)] = inbox_rows(app)
    assert status == "ignored"
    assert queued_job_ids(app) == []


def test_webhook_needs_no_login_and_no_csrf_token(app, client, configured):
    """Smaregi has no session and no CSRF token: the webhook accepts it while the console refuses."""
    assert client.post("/confirmations/exclude", data={"ids": "1"}).status_code == 400  # no CSRF token
    assert client.get("/confirmations/").status_code == 302  # no login
    response = client.post(URL, data=legacy_form(sale_row()))
    assert response.status_code == 200
    assert stored(app) == 1


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_resent_notification_is_stored_and_processed_once(app, world, jobs_runner, generation):
    """Smaregi's resend (same body; Platform: same Smaregi-Event-Id) is one inbox row and one ledger row."""
    smaregi = world.smaregi
    use_generation(app, smaregi, generation)
    world.add(A, "BAG01", "帆布トート", 10)
    [change] = smaregi.sell([(A, 2)])
    [send] = smaregi.sends
    assert send.ok and json.loads(send.last.response_body) == {"result": "ok"}
    smaregi.resend(send.id)
    assert [a.status for a in send.attempts] == [200, 200]
    rows = inbox_rows(app)
    assert [(g, s) for _id, g, s in rows] == [(generation, "received")]
    assert len(queued_job_ids(app)) == 1  # the drain, queued once

    jobs_runner()
    smaregi.resend(send.id)  # a resend after processing is not applied again either
    jobs_runner()
    assert inbox_rows(app) == [(rows[0][0], generation, "done")]
    assert stock_of(app, A) == change.stock_amount == 8
    assert ledger_count(app, A) == 1
    assert world.channel_stock(A) == (8, 8)


def test_database_unavailable_is_503_and_the_resend_is_stored(app, world, jobs_runner):
    """When the inbox cannot be written the webhook answers 503, so Smaregi's resend still counts."""
    smaregi = world.smaregi
    world.add(A, "BAG01", "帆布トート", 10)
    with app.app_context():
        cascade = " CASCADE" if db.engine.dialect.name == "postgresql" else ""
        db.session.execute(text(f"DROP TABLE smaregi_inbox{cascade}"))
        db.session.commit()
    smaregi.sell([(A, 1)])
    [send] = smaregi.sends
    assert (send.last.status, send.last.response_body, send.status) == (503, "unavailable", "failed")
    assert stock_of(app, A) == 10

    with app.app_context():
        SmaregiInbox.__table__.create(db.engine)
    smaregi.resend(send.id)
    assert (send.last.status, send.status) == (200, "success")
    jobs_runner()
    assert [s for _id, _g, s in inbox_rows(app)] == ["done"]
    assert stock_of(app, A) == 9
    assert world.channel_stock(A) == (9, 9)


def test_a_stored_notification_whose_job_was_lost_is_swept_up(app, world, jobs_runner):
    """Redis lost the drain after the row was stored: the sweeper wakes the inbox and it is applied."""
    world.add(A, "BAG01", "帆布トート", 10)
    world.smaregi.sell([(A, 4)])
    [(inbox_id, _g, _s)] = inbox_rows(app)
    with app.app_context():
        get_redis().flushdb()  # the queued job is gone, the inbox row is not
        assert sweep_inbox() == 0  # too fresh: its job may still be on its way
        db.session.execute(update(SmaregiInbox).values(received_at=utcnow() - timedelta(minutes=2)))
        db.session.commit()
        assert sweep_inbox() == 1
        assert [j.func_name for j in get_queue(WEBHOOKS).jobs] == ["stocklink.jobs.inbox.process_inbox"]
        assert sweep_inbox() == 1  # still waiting, but its drain is queued: not a second one
        assert len(get_queue(WEBHOOKS).jobs) == 1
    jobs_runner()
    assert inbox_rows(app) == [(inbox_id, "legacy", "done")]
    assert stock_of(app, A) == 6 and world.channel_stock(A) == (6, 6)


# -- what a request may carry ----------------------------------------------------------------
def _largest_legacy_form() -> dict:
    """A 在庫情報送信 naming 1,000 products (the most Smaregi documents: a 出庫 of 1,000 details),
    every field at its longest."""
    row = {"storeId": "9" * 9, "productId": "9" * 15, "amount": "-1999999998", "stockAmount": "-999999999",
           "layawayStockAmount": "-999999999", "stockDivision": "02", "fromStoreId": "9" * 9,
           "toStoreId": "9" * 9, "updDateTime": "2026-05-01 10:00:00"}
    rows = [{**row, "productId": str(10 ** 14 + n)} for n in range(1000)]
    return legacy_form(*rows)


def _largest_platform_body() -> bytes:
    return json.dumps({"contractId": CONTRACT, "event": "pos:stock", "action": "bulk-update",
                       "ids": [{"id": str(10 ** 18 + n), "productId": str(10 ** 14 + n), "storeId": "9" * 9}
                               for n in range(1000)]}).encode()


def test_the_largest_documented_notifications_fit_the_body_limit(app, client, configured):
    """1,000 products in either generation, at every field's longest, are accepted with room to spare."""
    from urllib.parse import urlencode

    from stocklink.web.webhooks import MAX_BODY
    form = _largest_legacy_form()
    assert 2 * len(urlencode(form)) < MAX_BODY and 2 * len(_largest_platform_body()) < MAX_BODY
    assert client.post(URL, data=form).status_code == 200
    assert client.post(URL, data=_largest_platform_body(), headers=platform_headers()).status_code == 200
    with app.app_context():
        rows = db.session.scalars(select(SmaregiInbox).order_by(SmaregiInbox.id)).all()
        assert [r.generation for r in rows] == ["legacy", "platform"]
        assert len(rows[1].payload["ids"]) == 1000


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_body_over_the_limit_is_413_and_not_stored(app, client, configured, generation):
    """A 10 MB body is refused with 413 before it is parsed; nothing is stored or queued."""
    filler = "x" * (10 * 1024 * 1024)
    if generation == "legacy":
        response = client.post(URL, data=legacy_form({**sale_row(), "memo": filler}))
    else:
        body = json.dumps({"contractId": CONTRACT, "ids": [{"productId": A, "memo": filler}]}).encode()
        response = client.post(URL, data=body, headers=platform_headers())
    assert response.status_code == 413
    assert response.get_data(as_text=True).startswith("too_large: at most 1048576 bytes")
    assert stored(app) == 0 and queued_job_ids(app) == []


def test_a_chunked_body_over_the_limit_is_413_over_http(app, stocklink_server, configured):
    """Without a Content-Length (chunked transfer) the limit still holds while the body is read."""
    import requests

    def chunks():
        yield b'{"contractId": "' + CONTRACT.encode() + b'", "pad": "'
        for _ in range(2 * 1024):
            yield b"x" * 1024
        yield b'"}'

    response = requests.post(f"{stocklink_server.url}{URL}", data=chunks(), headers=platform_headers(), timeout=10)
    assert response.status_code == 413
    assert stored(app) == 0


@pytest.fixture
def gunicorn_url(app, tmp_path):
    """The test app under gunicorn's gthread worker, as deployed (deploy/systemd)."""
    import subprocess
    import sys

    import requests

    from tests.conftest import _free_port
    port = _free_port()
    config = {k: v for k, v in app.config.items() if k in (
        "TESTING", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "REDIS_URL", "MAIL_SERVER", "MAIL_PORT")}
    env = {**os.environ, "STOCKLINK_TEST_CONFIG": json.dumps(config)}
    server = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-w", "1", "-k", "gthread",
                               "--threads", "2", "-b", f"127.0.0.1:{port}", "tests.gunicorn_app:app"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return requests.get(f"{url}/healthz", timeout=3).status_code > 0
            except requests.RequestException:
                return False
        assert wait_for(up, timeout=20)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize("refused", ["too_large", "wrong_code"])
def test_a_refused_body_leaves_the_connection_usable_for_the_next_notification(app, gunicorn_url, configured,
                                                                             refused):
    """A body refused unread (413, wrong code) is read and dropped first: gunicorn would answer
    keep-alive and then drop the connection, and the next notification on it would be lost."""
    import requests

    session = requests.Session()
    if refused == "too_large":
        first = session.post(f"{gunicorn_url}{URL}", data=legacy_form({**sale_row(), "memo": "x" * (2 * 1024 * 1024)}))
        assert first.status_code == 413
    else:
        first = session.post(f"{gunicorn_url}/webhooks/smaregi/not-the-code", data=legacy_form(sale_row()))
        assert first.status_code == 400
    second = session.post(f"{gunicorn_url}{URL}", data=legacy_form(sale_row()), timeout=10)
    assert second.status_code == 200 and stored(app) == 1


def test_brackets_inside_strings_do_not_count_as_nesting(app, client, configured):
    """The depth check skips strings: a value full of brackets (and escaped quotes) is a valid body."""
    body = json.dumps({"contractId": CONTRACT, "event": "pos:stock", "action": "edited",
                       "note": '[{"' * 500 + '\\"]', "ids": [{"id": "1", "productId": A, "storeId": "1"}]}).encode()
    response = client.post(URL, data=body, headers=platform_headers())
    assert response.status_code == 200
    assert stored(app) == 1


def test_numbers_sent_as_json_numbers_are_read_as_ids(app, client, configured):
    """Smaregi sends ids as strings; the same digits as JSON numbers are accepted and stored as strings."""
    from stocklink.jobs.inbox import notification_of
    body = json.dumps({"contractId": CONTRACT, "ids": [{"id": 77, "productId": 8100001, "storeId": 1}]}).encode()
    assert client.post(URL, data=body, headers=platform_headers()).status_code == 200
    with app.app_context():
        [movement] = notification_of(db.session.scalars(select(SmaregiInbox)).one()).movements
    assert (movement.product_id, movement.store_id, movement.history_id) == ("8100001", "1", "77")


NASTY = [b"", b"null", b"[]", b"\"x\"", b"1e99999", b"-" * 3000, b"{" * 100000, b"[" * 10 + b"]" * 11,
         b"\xc3\x28", b'{"contractId": {"$ne": 1}}', b'{"contractId": "' + CONTRACT.encode() + b'", "ids": null}',
         b'{"contractId": "' + CONTRACT.encode() + b'", "ids": [null, 1, "2", [], {}]}',
         b'{"contractId": "' + CONTRACT.encode() + b'", "ids": [{"productId": "\\u0000"}]}',
         b'{"contractId": "' + CONTRACT.encode() + b'", "ids": [{"productId": "1", "storeId": 1e400}]}',
         b'{"contractId": "' + CONTRACT.encode() + b'", "ids": [{"productId": "1", "id": -5}]}']


def test_no_body_is_answered_500(app, client, configured):
    """A handful of hostile bodies in both generations: each is 200 or 400, never 500."""
    statuses = set()
    for n, body in enumerate(NASTY):
        statuses.add(client.post(URL, data=body, headers=platform_headers(event_id=f"nasty-{n}")).status_code)
        text_body = body.decode("utf-8", "replace")
        for form in ({"params": text_body}, {"params": json.dumps({"data": [{"rows": [{"productId": text_body}]}]})},
                     {"params": json.dumps({"data": [{"rows": text_body}]})}):
            statuses.add(client.post(URL, data=form).status_code)
    assert statuses <= {200, 400} and 400 in statuses


# -- wrong customer codes --------------------------------------------------------------------
def _wrong(client, address: str = "203.0.113.7"):
    return client.post("/webhooks/smaregi/guess", data=legacy_form(sale_row()),
                       environ_base={"REMOTE_ADDR": address})


def test_wrong_codes_are_throttled_per_client_address(app, client, configured):
    """After 20 wrong codes from one address it is answered 429 for every code, the right one too;
    another address is not affected."""
    for _ in range(20):
        assert _wrong(client).get_data(as_text=True) == "code_mismatch"
    response = _wrong(client)
    assert (response.status_code, response.get_data(as_text=True)) == (429, "too_many_wrong_codes")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    right = client.post(URL, data=legacy_form(sale_row()), environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert right.status_code == 429  # a guess that hits must not show it did
    assert stored(app) == 0
    assert _wrong(client, "198.51.100.1").status_code == 400
    smaregi = client.post(URL, data=legacy_form(sale_row()), environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert smaregi.status_code == 200 and stored(app) == 1


def test_the_wrong_code_count_is_shared_through_redis(app, client, configured):
    """Another server process (its own memory, the same Redis) refuses the address at its first wrong code."""
    from stocklink.web.webhook_throttle import KEY
    with app.app_context():
        get_redis().set(KEY.format("203.0.113.7"), 20, ex=60)  # what the other processes counted
    assert _wrong(client).status_code == 429
    assert _wrong(client, "203.0.113.8").status_code == 400


def test_with_redis_down_the_right_code_is_stored_and_wrong_codes_still_counted(app, client, configured):
    """With Redis unreachable the right code is still stored (200), and wrong codes are still
    counted, in this process."""
    from redis import Redis
    with app.app_context():
        app.extensions["stocklink_redis"] = Redis(unix_socket_path="/nonexistent/redis.sock",
                                                  socket_connect_timeout=0.1)
    assert client.post(URL, data=legacy_form(sale_row())).status_code == 200
    assert stored(app) == 1
    for _ in range(20):
        assert _wrong(client).status_code == 400
    assert _wrong(client).status_code == 429
