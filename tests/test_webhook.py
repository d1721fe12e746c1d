"""POST /webhooks/smaregi/<customer code>: authenticate, store once, answer at once (SPEC §4, §11.1)."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from stocklink.extensions import db
from stocklink.jobs.inbox import sweep_inbox
from stocklink.models import SmaregiInbox
from stocklink.models._types import utcnow
from stocklink.queues import WEBHOOKS, get_queue, get_redis
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
    (legacy_form(sale_row(product_id="12ab")), "productId is not a number"),
    (legacy_form({**sale_row(), "amount": "many"}), "amount is not a number"),
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
])
def test_malformed_platform_webhooks_are_400_with_a_reason(app, client, configured, headers, body, reason):
    """A Platform webhook with a broken body or without its event id is 400 with a reason; nothing stored."""
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == f"malformed: {reason}"
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
