"""Unlinkable products in a Smaregi notification: the three modes of seed 000, the confirmation
queue and the exclusion list, with the e-mails really received (SPEC §4, §7).

The seed's example: a sale of A ×2 (100 yen), B ×3 (90 yen) and C ×1 (150 yen), 620 yen in
all, where B has no linked listing.
"""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.infra.queues import WEBHOOKS, get_queue
from stocklink.models import ConfirmationItem, Exclusion, Listing, OutboxMessage, Product, StockLedger
from stocklink.services import merchant_settings
from tests.e2e_helpers import MERCHANT_MAIL, add_product, inbox_rows, ledger_count, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A, B, C, D = "8300001", "8300002", "8300003", "8300004"
ABORT_SUBJECT = "※ご確認ください※在庫情報送信処理中にエラーが発生しました。"
SKIPPED = "在庫連携できない商品をスキップしました"
EXCLUDED = "在庫連携対象外アイテムに自動登録しました"


@pytest.fixture
def shop(app, world):
    """A and C linked on ColorMe and Shopify; B and D known to Smaregi and stocklink, linked nowhere."""
    world.add(A, "A001", "商品A", 10, price=100)
    world.add(C, "C001", "商品C", 10, price=150)
    for sid, code, name in ((B, "B001", "商品B"), (D, "D001", "商品D")):
        world.smaregi.add_product(sid, name, code=code, price=90, stock=10)
        add_product(app, sid, code, name, stock=10)
    return world


def set_mode(app, mode: str) -> None:
    with app.app_context():
        merchant_settings.save({"sync.unlinkable_mode": mode})


def sell_620_yen(world):
    """The seed's sale: A ×2 at 100 yen, B ×3 at 90 yen, C ×1 at 150 yen."""
    prices = {sid: world.smaregi.products[sid].price for sid in (A, B, C)}
    assert 2 * prices[A] + 3 * prices[B] + 1 * prices[C] == 620
    before = len(world.smaregi.sends)
    world.smaregi.sell([(A, 2), (B, 3), (C, 1)])
    [send] = world.smaregi.sends[before:]
    return send


def mails(mailbox, subject: str | None = None) -> list[dict]:
    with mailbox.lock:
        messages = list(mailbox.messages)
    return [m for m in messages if subject is None or m["subject"] == subject]


def body(mail: dict) -> str:
    return mail["message"].get_content()


def queue_rows(app) -> list[tuple]:
    """(smaregi id, reason, times skipped, decision) of the confirmation queue."""
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(ConfirmationItem.smaregi_product_id, ConfirmationItem.reason, ConfirmationItem.times_skipped,
                   ConfirmationItem.decision).order_by(ConfirmationItem.smaregi_product_id))]


def exclusion_rows(app) -> list[tuple]:
    """(smaregi id, automatic) of the exclusion list."""
    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(Exclusion.smaregi_product_id, Exclusion.automatic).order_by(Exclusion.smaregi_product_id))]


def item_ids(app, *smaregi_ids: str) -> list[str]:
    with app.app_context():
        return [str(i) for i in db.session.scalars(select(ConfirmationItem.id).where(
            ConfirmationItem.smaregi_product_id.in_(smaregi_ids)))]


def _product_id(smaregi_id: str) -> int:
    return db.session.scalar(select(Product.id).where(Product.smaregi_product_id == smaregi_id))


def htmx_post(client, auth, path: str, data: dict):
    """A button press on the confirmation page as htmx sends it (token in hx-headers)."""
    token = auth.token("/confirmations/")
    return client.post(path, data=data, headers={"HX-Request": "true", "X-CSRFToken": token})


def test_skip_mode_syncs_a_and_c_and_mails_every_time_b_is_skipped(app, shop, jobs_runner, mailbox):
    """Skip (default): A and C are applied, B is queued and mailed about on every sale (seed 000)."""
    set_mode(app, "skip")
    send = sell_620_yen(shop)
    assert send.ok
    jobs_runner()
    assert [stock_of(app, sid) for sid in (A, B, C)] == [8, 10, 9]
    assert shop.channel_stock(A) == (8, 8) and shop.channel_stock(C) == (9, 9)
    assert ledger_count(app, B) == 0
    assert queue_rows(app) == [(B, "no_listing", 1, None)]
    assert exclusion_rows(app) == []
    [mail] = mails(mailbox, SKIPPED)
    assert mail["to"] == [MERCHANT_MAIL]
    assert f"スマレジ商品ID {B} / 商品コード B001 / 商品B" in body(mail)
    assert A not in body(mail) and C not in body(mail)

    sell_620_yen(shop)
    jobs_runner()
    assert [stock_of(app, sid) for sid in (A, B, C)] == [6, 10, 8]
    assert queue_rows(app) == [(B, "no_listing", 2, None)]
    assert len(mails(mailbox, SKIPPED)) == 2
    with app.app_context():
        assert set(db.session.scalars(select(OutboxMessage.status))) == {"sent"}


def test_auto_exclude_mode_mails_only_the_first_time(app, shop, jobs_runner, mailbox):
    """Auto-exclude: B goes onto the exclusion list with one mail; later sales skip it silently."""
    set_mode(app, "auto_exclude")
    sell_620_yen(shop)
    jobs_runner()
    assert [stock_of(app, sid) for sid in (A, B, C)] == [8, 10, 9]
    assert exclusion_rows(app) == [(B, True)]
    assert queue_rows(app) == []
    [mail] = mails(mailbox)
    assert (mail["subject"], mail["to"]) == (EXCLUDED, [MERCHANT_MAIL])
    assert f"スマレジ商品ID {B}" in body(mail)

    sell_620_yen(shop)
    jobs_runner()
    assert [stock_of(app, sid) for sid in (A, B, C)] == [6, 10, 8]
    assert shop.channel_stock(A) == (6, 6) and shop.channel_stock(C) == (8, 8)
    assert exclusion_rows(app) == [(B, True)]
    assert len(mails(mailbox)) == 1


@pytest.mark.parametrize("decision", ["release", "exclude"])
def test_abort_mode_rejects_then_the_resend_is_processed_in_full(app, client, logged_in, shop, jobs_runner,
                                                               mailbox, decision):
    """Abort: 400 naming B and nothing applied; after the merchant's choice Smaregi's resend is applied in full."""
    set_mode(app, "abort")
    send = sell_620_yen(shop)
    assert (send.last.status, send.status) == (400, "failed")
    assert send.last.response_body == f"unlinkable_products: {B}:商品B"
    assert inbox_rows(app) == []
    assert [stock_of(app, sid) for sid in (A, B, C)] == [10, 10, 10]
    assert queue_rows(app) == [(B, "aborted", 1, None)]
    jobs_runner()
    [mail] = mails(mailbox)
    assert (mail["subject"], mail["to"]) == (ABORT_SUBJECT, [MERCHANT_MAIL])
    assert f"スマレジ商品ID {B} / 商品コード B001 / 商品B" in body(mail)
    assert shop.channel_stock(A) == (10, 10)

    response = htmx_post(client, logged_in, f"/confirmations/{decision}", {"ids": item_ids(app, B)})
    assert response.status_code == 200
    if decision == "release":  # 「除外登録しない」: kept until the resend is processed
        assert queue_rows(app) == [(B, "aborted", 1, "do_not_exclude")]
        assert "再送待ち" in response.get_data(as_text=True)  # "waiting for the resend"
    else:  # 「除外登録する」
        assert queue_rows(app) == [] and exclusion_rows(app) == [(B, False)]

    shop.smaregi.resend(send.id)
    assert (send.last.status, send.status) == (200, "success")
    jobs_runner()
    assert [status for _id, _g, status in inbox_rows(app)] == ["done"]
    assert stock_of(app, A) == 8 and stock_of(app, C) == 9
    assert shop.channel_stock(A) == (8, 8) and shop.channel_stock(C) == (9, 9)
    assert stock_of(app, B) == (7 if decision == "release" else 10)
    assert queue_rows(app) == []
    assert len(mails(mailbox)) == 1  # nothing more to tell the merchant


def test_abort_mode_with_everything_linkable_is_accepted(app, shop, jobs_runner):
    """Abort mode rejects only notifications with unlinkable products: A and C alone go through."""
    set_mode(app, "abort")
    shop.smaregi.sell([(A, 1), (C, 1)])
    assert shop.smaregi.sends[-1].ok
    jobs_runner()
    assert (stock_of(app, A), stock_of(app, C)) == (9, 9)


def test_an_excluded_product_stays_skipped_after_it_is_linked(app, shop, jobs_runner, mailbox):
    """Exclusion wins over a link: B is linked but still on the list, so it is skipped silently."""
    set_mode(app, "auto_exclude")
    sell_620_yen(shop)
    jobs_runner()
    assert exclusion_rows(app) == [(B, True)]
    shop_id = shop.colorme.add_product("商品B", stocks=10)
    with app.app_context():
        db.session.add(Listing(channel_id=shop.colorme_id, product_id=_product_id(B), identifier=str(shop_id),
                               last_confirmed_quantity=10))
        db.session.commit()
    sell_620_yen(shop)
    jobs_runner()
    assert stock_of(app, B) == 10 and shop.colorme.stock(shop_id) == 10
    assert len(mails(mailbox)) == 1


def test_release_without_adjust_only_empties_the_queue(app, client, logged_in, shop, jobs_runner):
    """「確認待ちを解除する」 as an htmx request answers the rows fragment and removes B; nothing is pushed."""
    sell_620_yen(shop)
    jobs_runner()
    response = htmx_post(client, logged_in, "/confirmations/release", {"ids": item_ids(app, B)})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and "確認が必要な商品はありません。" in html  # the fragment only, now empty
    assert "HX-Request" in response.headers["Vary"]
    trigger = json.loads(response.headers["HX-Trigger"])
    assert "review-changed" in trigger and "1" in trigger["review-changed"]["message"]
    assert queue_rows(app) == []
    with app.app_context():
        assert get_queue(WEBHOOKS).count == 0
    assert stock_of(app, B) == 10


def test_release_with_adjust_keeps_an_unlinkable_product_queued(app, client, logged_in, shop, jobs_runner):
    """With 「同時に在庫数をスマレジに合わせて調整する」 a product still without a listing stays queued."""
    sell_620_yen(shop)
    jobs_runner()
    response = htmx_post(client, logged_in, "/confirmations/release", {"ids": item_ids(app, B), "adjust": "1"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" not in html and B in html and re.search(r'name="ids" value="\d+"', html)
    assert "次の商品はまだ連携できないため、確認待ちのままです" in html
    assert B in json.loads(response.headers["HX-Trigger"])["review-changed"]["message"]
    assert queue_rows(app) == [(B, "no_listing", 1, None)]
    with app.app_context():
        assert get_queue(WEBHOOKS).count == 0


def test_release_with_adjust_reads_smaregi_and_pushes_once_linked(app, client, logged_in, shop, jobs_runner):
    """Once B is linked, release with adjust re-reads B from Smaregi and pushes it to its listing."""
    sell_620_yen(shop)
    jobs_runner()
    shop_id = shop.colorme.add_product("商品B", stocks=10)
    with app.app_context():
        db.session.add(Listing(channel_id=shop.colorme_id, product_id=_product_id(B), identifier=str(shop_id)))
        db.session.commit()
    response = htmx_post(client, logged_in, "/confirmations/release", {"ids": item_ids(app, B), "adjust": "1"})
    assert response.status_code == 200
    assert queue_rows(app) == []
    jobs_runner()
    assert stock_of(app, B) == 7 == shop.smaregi.stock_of(B)
    assert shop.colorme.stock(shop_id) == 7
    with app.app_context():
        [entry] = db.session.scalars(select(StockLedger).where(StockLedger.product_id == _product_id(B))).all()
        assert (entry.before, entry.after, entry.cause) == (10, 7, "merchant:release_adjust")


def test_exclude_in_bulk_then_later_sales_skip_silently(app, client, logged_in, shop, jobs_runner, mailbox):
    """「在庫連携対象外とする」 on two checked rows moves both to the exclusion list; no more mails."""
    shop.smaregi.sell([(A, 1), (B, 1), (D, 1)])
    jobs_runner()
    assert [r[0] for r in queue_rows(app)] == [B, D]
    assert len(mails(mailbox, SKIPPED)) == 1
    response = htmx_post(client, logged_in, "/confirmations/exclude", {"ids": item_ids(app, B, D)})
    assert response.status_code == 200
    assert "2" in json.loads(response.headers["HX-Trigger"])["review-changed"]["message"]
    assert "<table" not in response.get_data(as_text=True)
    assert queue_rows(app) == [] and exclusion_rows(app) == [(B, False), (D, False)]

    shop.smaregi.sell([(A, 1), (B, 1), (D, 1)])
    jobs_runner()
    assert stock_of(app, A) == 8 and (stock_of(app, B), stock_of(app, D)) == (10, 10)
    assert queue_rows(app) == [] and len(mails(mailbox, SKIPPED)) == 1


def test_confirmation_actions_without_htmx_redirect_to_the_page(app, client, logged_in, shop, jobs_runner):
    """Without JavaScript the form posts normally and is answered 303 to the queue page with a flash."""
    sell_620_yen(shop)
    jobs_runner()
    token = logged_in.token("/confirmations/")
    response = client.post("/confirmations/exclude", data={"ids": item_ids(app, B), "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/confirmations/")
    page = client.get("/confirmations/")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert exclusion_rows(app) == [(B, False)]


def test_removing_an_exclusion_syncs_the_product_again(app, client, logged_in, shop, jobs_runner, mailbox):
    """Removing B from the exclusion list makes the next sale treat it as unlinkable again (queue + mail)."""
    set_mode(app, "auto_exclude")
    sell_620_yen(shop)
    jobs_runner()
    with app.app_context():
        [exclusion_id] = db.session.scalars(select(Exclusion.id)).all()
    page = client.get("/exclusions/")
    assert page.status_code == 200 and B in page.get_data(as_text=True)
    token = logged_in.token("/exclusions/")
    response = client.post("/exclusions/remove", data={"ids": str(exclusion_id), "csrf_token": token})
    assert response.status_code == 303
    assert exclusion_rows(app) == []

    set_mode(app, "skip")
    sell_620_yen(shop)
    jobs_runner()
    assert queue_rows(app) == [(B, "no_listing", 1, None)]
    assert len(mails(mailbox, SKIPPED)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(Exclusion.id))) == 0


def test_a_resend_of_a_stored_notification_is_not_aborted_later(app, shop, jobs_runner):
    """A notification accepted once is answered as stored even if abort mode would now reject it."""
    world = shop
    world.smaregi.sell([(A, 1), (C, 1)])
    send = world.smaregi.sends[-1]
    jobs_runner()
    set_mode(app, "abort")
    with app.app_context():  # A is no longer linkable
        db.session.execute(Listing.__table__.delete().where(Listing.product_id == _product_id(A)))
        db.session.commit()
    world.smaregi.resend(send.id)
    assert (send.last.status, send.status) == (200, "success")
    assert len(inbox_rows(app)) == 1 and queue_rows(app) == []


NOBODY = "8399999"  # a product id Smaregi does not know


def _post(client, generation: str, *product_ids: str, event_id: str = "evt-unknown-1"):
    """A notification naming ``product_ids``, as Smaregi would send it, posted by hand."""
    from tests.e2e_helpers import CONTRACT, CUSTOMER_CODE
    url = f"/webhooks/smaregi/{CUSTOMER_CODE}"
    if generation == "legacy":
        rows = [{"storeId": "1", "productId": sid, "amount": "-1", "stockAmount": "9", "stockDivision": "02",
                 "updDateTime": "2026-05-01 10:00:00"} for sid in product_ids]
        return client.post(url, data={"params": json.dumps({"data": [{"table_name": "Stock", "rows": rows}]})})
    body = {"contractId": CONTRACT, "event": "pos:stock", "action": "edited",
            "ids": [{"id": str(n + 1), "productId": sid, "storeId": "1"} for n, sid in enumerate(product_ids)]}
    return client.post(url, data=json.dumps(body), headers={"Smaregi-Event": "pos:stock", "Smaregi-Event-Id": event_id,
                                                            "Content-Type": "application/json"})


def test_skips_of_one_drained_batch_are_one_mail_naming_every_product(app, shop, jobs_runner, mailbox):
    """Three sales drained together skip B twice and D once: one mail names B (twice) and D; the next
    batch that skips B mails again (seed 000: every time)."""
    set_mode(app, "skip")
    shop.smaregi.sell([(A, 1), (B, 1)])
    shop.smaregi.sell([(C, 1), (D, 1)])
    shop.smaregi.sell([(B, 2)])
    assert len(inbox_rows(app)) == 3
    jobs_runner()
    assert [status for _id, _g, status in inbox_rows(app)] == ["done"] * 3
    [mail] = mails(mailbox, SKIPPED)
    text = body(mail)
    assert f"スマレジ商品ID {B} / 商品コード B001 / 商品B (2 件の在庫情報送信)" in text
    assert f"スマレジ商品ID {D} / 商品コード D001 / 商品D\r\n" in text  # once: no count
    assert A not in text and C not in text
    assert queue_rows(app) == [(B, "no_listing", 2, None), (D, "no_listing", 1, None)]

    shop.smaregi.sell([(B, 1)])
    jobs_runner()
    assert len(mails(mailbox, SKIPPED)) == 2


def test_auto_excluded_products_of_one_batch_are_one_mail(app, shop, jobs_runner, mailbox):
    """Auto-exclude: B and D, skipped by two notifications of one batch, are announced in one mail."""
    set_mode(app, "auto_exclude")
    shop.smaregi.sell([(B, 1)])
    shop.smaregi.sell([(D, 1), (A, 1)])
    jobs_runner()
    [mail] = mails(mailbox)
    assert mail["subject"] == EXCLUDED and B in body(mail) and D in body(mail)
    assert exclusion_rows(app) == [(B, True), (D, True)]
    assert stock_of(app, A) == 9


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_a_product_smaregi_does_not_know_is_logged_not_mailed(app, client, shop, jobs_runner, mailbox, caplog,
                                                             generation):
    """A notification naming A and a product unknown to Smaregi: A is applied, the unknown one is
    logged and neither queued nor mailed as unlinkable."""
    from tests.e2e_helpers import use_generation
    use_generation(app, shop.smaregi, generation)
    shop.smaregi.sell([(A, 1)])  # Smaregi's stock of A is 9 now
    assert _post(client, generation, A, NOBODY).status_code == 200
    with caplog.at_level("WARNING", logger="stocklink.services.smaregi_stock"):
        jobs_runner()
    assert [status for _id, _g, status in inbox_rows(app)] == ["done", "done"]
    assert stock_of(app, A) == 9 and shop.channel_stock(A) == (9, 9)
    assert queue_rows(app) == [] and exclusion_rows(app) == []
    assert mails(mailbox) == []
    assert f"names products Smaregi does not know; skipped: {NOBODY}" in caplog.text
    with app.app_context():
        assert db.session.scalar(select(func.count(Product.id)).where(Product.smaregi_product_id == NOBODY)) == 0


def test_abort_mode_asks_smaregi_about_products_new_to_stocklink(app, client, shop, jobs_runner, mailbox):
    """Abort mode decides in the request: a product Smaregi does not know does not abort; one it
    knows but stocklink has not seen yet does, named as Smaregi names it."""
    set_mode(app, "abort")
    assert _post(client, "legacy", A, NOBODY).status_code == 200
    assert queue_rows(app) == []
    shop.smaregi.add_product("8300077", "新商品E", code="E001", stock=5)
    response = _post(client, "legacy", C, "8300077")
    assert (response.status_code, response.get_data(as_text=True)) == (400, "unlinkable_products: 8300077:新商品E")
    assert queue_rows(app) == [("8300077", "aborted", 1, None)]
    jobs_runner()
    assert [mail["subject"] for mail in mails(mailbox)] == [ABORT_SUBJECT]
    assert stock_of(app, A) == 10  # the accepted notification said 9, but Smaregi still has 10


def test_abort_mode_with_smaregi_unreachable_answers_503(app, client, shop):
    """When Smaregi cannot say whether a new product exists, the notification is answered 503
    (Smaregi marks it failed and it can be resent); nothing is stored."""
    set_mode(app, "abort")
    shop.smaregi.fail_next("maintenance", count=5)
    response = _post(client, "legacy", A, "8300078")
    assert (response.status_code, response.get_data(as_text=True)) == (503, "unavailable")
    assert inbox_rows(app) == [] and queue_rows(app) == []
