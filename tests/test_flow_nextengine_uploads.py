"""Sales reaching NextEngine as summed deltas in one CSV upload per run, and the report mailed for
each run (seed 001)."""
from __future__ import annotations

from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.jobs.inbox import process_inbox
from stocklink.jobs.push import push_channel
from stocklink.models import ErrorRecord, Listing, OutboxMessage, Product
from tests.e2e_helpers import ERROR_MAIL, stock_of

pytest_plugins = ["tests.fixtures_platforms"]

A, C = "8200001", "8200003"


def _ne_listings(app, world, ne, ne_id, goods: dict[str, tuple[str, int]]) -> None:
    """Link Smaregi products to NextEngine codes (goods: smaregi id → (code, stock)); a code with
    stock None is linked in stocklink but unknown to NextEngine."""
    with app.app_context():
        for sid, (code, stock) in goods.items():
            if stock is not None:
                ne.add_goods(code, stock)
            product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == sid))
            db.session.add(Listing(channel_id=ne_id, product_id=product_id, identifier=code,
                                   last_confirmed_quantity=stock))
        db.session.commit()


def _mails(mailbox) -> list[dict]:
    """Received messages as subject, body text and attachments {filename: text}."""
    out = []
    with mailbox.lock:
        for m in mailbox.messages:
            body, files = "", {}
            for part in m["message"].walk():
                if part.is_multipart():
                    continue
                text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
                if part.get_filename():
                    files[part.get_filename()] = text
                else:
                    body += text
            out.append({"subject": m["subject"], "to": m["to"], "body": body, "files": files})
    return out


def test_a_batch_forwards_each_products_summed_deltas_to_nextengine_once(app, world, nextengine_world,
                                                                         jobs_runner, caplog):
    """Several sales of two products drained together: NextEngine gets one CSV row per product
    carrying the sum of its movements, and ends at Smaregi's stock (seed 001 delta rules)."""
    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    world.add(C, "CUP01", "カップ", 20)
    _ne_listings(app, world, ne, ne_id, {A: ("MUG01", 20), C: ("CUP01", 20)})
    for _ in range(3):
        world.smaregi.sell([(A, 1), (C, 2)])
    assert process_inbox() == "done 3, 3 channel(s) to push"
    assert "one by one" not in caplog.text  # applied as one batch, not row by row after a failure
    with app.app_context():
        deltas = dict(db.session.execute(select(Listing.identifier, Listing.pending_delta)
                                         .where(Listing.channel_id == ne_id)).all())
    assert deltas == {"MUG01": -3, "CUP01": -6}
    jobs_runner()
    uploads = [r for r in ne.requests if r["path"] == "/api_v1_master_goods/upload"]
    assert len(uploads) == 1
    assert (ne.stock("MUG01"), ne.stock("CUP01")) == (17, 14) == (stock_of(app, A), stock_of(app, C))


def test_each_nextengine_run_mails_its_report_with_the_csv_and_then_the_previous_result(
        app, client, logged_in, world, nextengine_world, jobs_runner, mailbox):
    """Seed 001: every run mails a report — the upload (成功 / 失敗 in the subject, the CSV
    attached), the previous upload as NextEngine processed it, the order import — over SMTP.
    A row NextEngine rejected (商品コード not registered there) is named with its line."""
    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    world.add(C, "CUP01", "カップ", 20)
    _ne_listings(app, world, ne, ne_id, {A: ("MUG01", 20), C: ("CUP01", None)})
    world.smaregi.sell([(A, 1), (C, 2)])
    jobs_runner()
    [first] = [m for m in _mails(mailbox) if "ネクストエンジン" in m["subject"]]
    assert first["subject"] == "【stocklink】ネクストエンジン アップロード:成功"
    assert first["to"] == [ERROR_MAIL]  # no report address set: the error address
    [(filename, csv_text)] = first["files"].items()
    upload = next(u for u in ne.uploads)
    assert filename == f"nextengine_{upload['que_id']}.csv" and f"キューID {upload['que_id']}" in first["body"]
    assert csv_text.splitlines() == ["syohin_code,zaiko_su", "MUG01,-1", "CUP01,-2"] == upload["csv"].splitlines()
    assert "確認待ちのアップロードはありません。" in first["body"] and "■ 受注取込" in first["body"]
    with app.app_context():  # the outbox keeps it: listed as sent, shown with its CSV
        message_id = db.session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "report"))
    listing_page = client.get("/outbox/").get_data(as_text=True)
    assert first["subject"] in listing_page and "送信済み" in listing_page and "連携処理ごとのレポート" in listing_page
    shown = client.get(f"/outbox/{message_id}").get_data(as_text=True)
    assert "送信済み" in shown and f"添付ファイル: {filename}" in shown and "CUP01,-2" in shown

    with app.app_context():  # the next run (the minute sweep) asks NextEngine how the upload went
        push_channel(ne_id)
    jobs_runner(queues=("mail",))
    [second] = [m for m in _mails(mailbox) if "ネクストエンジン" in m["subject"]][1:]
    assert second["subject"] == "【stocklink】ネクストエンジン 前回の処理結果:失敗"
    assert second["files"] == {} and "今回アップロードした在庫変動はありません。" in second["body"]
    assert f"キューID {upload['que_id']}: 失敗" in second["body"]
    assert "3行目" in second["body"] and "CUP01" in second["body"]
    assert ne.stock("MUG01") == 19
    with app.app_context():
        [error] = db.session.scalars(select(ErrorRecord).where(ErrorRecord.kind == "upload_rejected")).all()
        assert error.code == upload["que_id"] and error.resolved_at is None


def test_a_report_that_cannot_be_written_never_uploads_the_counts_twice(app, world, nextengine_world,
                                                                       jobs_runner, monkeypatch, caplog):
    """The upload's bookkeeping and its report share one commit; a report that fails to render
    is logged and the bookkeeping still lands, so the next run does not upload the same counts."""
    from stocklink.jobs import report

    ne, ne_id = nextengine_world
    world.add(A, "MUG01", "マグカップ", 20)
    _ne_listings(app, world, ne, ne_id, {A: ("MUG01", 20)})

    def broken(*_args, **_kwargs):
        raise RuntimeError("template error")

    monkeypatch.setattr(report, "_report", broken)
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    with app.app_context():
        push_channel(ne_id)
        push_channel(ne_id)
        listing = db.session.scalars(select(Listing).where(Listing.channel_id == ne_id)).one()
        assert (listing.pending_delta, listing.dirty) == (0, False)
    assert [u["csv"].splitlines()[1:] for u in ne.uploads] == [["MUG01,-3"]]
    assert ne.stock("MUG01") == 17
    assert "could not be queued" in caplog.text
