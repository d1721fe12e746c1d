"""Merchant-facing text is rendered in the reader's language: errors and ledger rows store a kind
and its parameters, so the English console shows no Japanese sentence and the Japanese console
no raw code (issue 12 item 5).

Every name the test chooses (channels, product) is ASCII, so any Japanese on an English page is
stocklink's own text; on a Japanese page any code (``smaregi:02:sale``, ``inbox:3``, ``auth``)
is one stocklink failed to put into words. The platforms' own words are allowed only as a
labelled detail (``詳細: …``), apart from the sentence.
"""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, ErrorRecord, StockLedger
from stocklink.services.channel_clients import credentials_of
from stocklink.services.merchant_text import DIVISIONS, ledger_cause, ledger_source
from tests.e2e_helpers import World, add_channel

pytest_plugins = ["tests.fixtures_platforms"]

A = "8400001"
PAGES = ("/", "/errors/", "/products/{product}", "/settings/")
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]{2,}")  # kana, kanji
# The language switch names each language in itself: 日本語 on every page, in both languages.
LANGUAGE_SWITCH = re.compile(r'<button name="lang" value="ja"[^>]*>日本語</button>')
CODES = {
    "a ledger cause": re.compile(r"\b(?:smaregi|merchant):[\w,:]+"),
    "a ledger source": re.compile(r"\binbox:[\d,]+"),
    "a column or key name": re.compile(r"\b[a-z]+(?:_[a-z]+)+\b"),
}
# In Japanese text even a plain English word is a code ("temporary" is an error kind; in English a word).
CODE_WORDS = {
    "an error kind": re.compile(r"\b(?:auth|temporary|unknown_item|write_unconfirmed|upload_rejected)\b"),
    "a source or kind code": re.compile(r"\b(?:smaregi|channel|registration|webhook|colorme|shopify|nextengine)\b"),
}


@pytest.fixture
def shop(app, smaregi, colorme, shopify, jobs_runner):
    """A sale processed end to end, then a level-9 stop (ColorMe refuses the token), a temporary
    channel error (Shopify in maintenance) and a temporary Smaregi error, each from a real exchange."""
    world = World(app, smaregi, colorme, shopify, add_channel(app, colorme, "colorme", "Main Street"),
                  add_channel(app, shopify, "shopify", "Outlet"), {})
    world.add(A, "MUG01", "Enamel mug", 10)
    world.smaregi.sell([(A, 2)])
    jobs_runner()
    assert world.channel_stock(A) == (8, 8)

    with app.app_context():
        world.colorme.revoke_token(credentials_of(db.session.get(Channel, world.colorme_id))["access_token"])
    world.shopify.set_maintenance(True)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    world.smaregi.fail_next("500", count=1)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    with app.app_context():
        errors = {(r.source, r.channel_id, r.level, r.kind, r.message_key)
                  for r in db.session.scalars(select(ErrorRecord).where(ErrorRecord.resolved_at.is_(None)))}
        causes = db.session.execute(select(StockLedger.cause, StockLedger.source_event)
                                    .order_by(StockLedger.id)).all()
    assert errors == {("channel", world.colorme_id, 9, "auth", "channel_auth"),
                      ("channel", world.shopify_id, 8, "temporary", "channel_temporary"),
                      ("smaregi", None, 8, "temporary", "smaregi_unavailable")}
    assert [c for c, _s in causes] == ["smaregi:02:sale", "smaregi:02:sale"]
    assert all(s.startswith("inbox:") for _c, s in causes)
    return world


def pages_in(client, auth, lang: str, product_id: int) -> dict[str, str]:
    """Each page of the done-when list, rendered after switching the session to ``lang``."""
    client.post("/language", data={"lang": lang, "next": "/", "csrf_token": auth.token("/")})
    out = {}
    for path in PAGES:
        path = path.format(product=product_id)
        response = client.get(path)
        assert response.status_code == 200, path
        out[path] = response.get_data(as_text=True)
    return out


def visible_text(page: str, *, without_details: bool = False) -> str:
    """The text a reader sees: no tags, scripts or URLs; ``without_details`` also drops the
    platforms' own words (``<small class="detail">``)."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    if without_details:
        page = re.sub(r'<small class="detail">.*?</small>', " ", page, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    return re.sub(r"https?://\S+", " ", text)


def assert_no_raw_code(path: str, page: str, patterns: dict) -> None:
    """The page's own text (the platforms' words, shown as details, left out) matches no pattern."""
    text = visible_text(page, without_details=True)
    for what, pattern in patterns.items():
        assert pattern.findall(text) == [], f"{path} shows {what}"


def test_the_english_console_shows_no_japanese_after_an_error_a_stop_and_a_sale(client, logged_in, shop):
    """Dashboard, errors, product history and settings in English: every sentence is English (and
    no code stands in for one either)."""
    pages = pages_in(client, logged_in, "en", shop.items[A]["product"])
    for path, page in pages.items():
        found = JAPANESE.findall(LANGUAGE_SWITCH.sub("", page))
        assert found == [], f"{path}: {found}"
        assert_no_raw_code(path, page, CODES)
    errors, history = pages["/errors/"], pages[f"/products/{shop.items[A]['product']}"]
    assert "Stopped by an authentication error" in errors and "A temporary error. Retrying automatically." in errors
    assert "Could not read the stock from Smaregi" in errors and "<td>Smaregi</td>" in errors
    assert "Details: ColorMe refused the access token" in errors
    assert history.count("<td>Sale (Smaregi)</td>") == 2 and "<td>Smaregi stock</td>" in history
    assert re.search(r"<td>Stock notification #\d+</td>", history)
    assert "<td>ColorMe Shop</td>" in pages["/"] and "<td>ColorMe Shop</td>" in pages["/settings/"]
    assert "Main Street is stopped by an authentication error" in pages["/"]


def test_the_japanese_console_shows_no_raw_code_after_an_error_a_stop_and_a_sale(client, logged_in, shop):
    """The same pages in Japanese: causes, sources, places and error kinds are words, not codes."""
    pages = pages_in(client, logged_in, "ja", shop.items[A]["product"])
    for path, page in pages.items():
        assert_no_raw_code(path, page, CODES | CODE_WORDS)
    errors, history = pages["/errors/"], pages[f"/products/{shop.items[A]['product']}"]
    assert "認証エラーのため連携を停止しました" in errors and "一時的なエラーです。自動で再試行します。" in errors
    assert "スマレジからの在庫取得に失敗しました" in errors and "<td>スマレジ</td>" in errors
    assert "詳細: ColorMe refused the access token" in errors  # the platform's words, apart and labelled
    assert history.count("<td>売上（スマレジ）</td>") == 2 and "<td>スマレジ在庫数</td>" in history
    assert re.search(r"<td>在庫通知 #\d+</td>", history)
    assert "<td>カラーミーショップ</td>" in pages["/"] and "<td>カラーミーショップ</td>" in pages["/settings/"]
    assert "スマレジ: スマレジからの在庫取得に失敗しました" in visible_text(pages["/"])  # latest failure, by place


def test_the_same_error_row_reads_in_each_language(app, client, logged_in, shop):
    """The row holds the key and parameters; the language is chosen when the page is made."""
    with app.app_context():
        error = db.session.scalars(select(ErrorRecord).where(ErrorRecord.level == 9)).one()
        assert (error.message_params, "認証" in error.message) == ({}, False)
        assert error.message == "ColorMe refused the access token (401)"  # the platform's words only
    product_id = shop.items[A]["product"]
    assert "Stopped by an authentication error" in pages_in(client, logged_in, "en", product_id)["/errors/"]
    assert "認証エラーのため連携を停止しました" in pages_in(client, logged_in, "ja", product_id)["/errors/"]


def flashes(client, auth, path: str) -> str:
    """The messages the Settings screen shows after posting to ``path``."""
    client.post(path, data={"csrf_token": auth.token("/settings/")})
    page = client.get("/settings/").get_data(as_text=True)
    return " ".join(html.unescape(m) for m in re.findall(r'<p class="flash \w+">(.*?)</p>', page, flags=re.S))


def test_connection_tests_answer_in_the_readers_language(client, logged_in, shop):
    """Settings → test connection, as a new merchant tries it first: what was found, or why it
    failed, is a sentence in the reader's language; the platform's own words come as a detail."""
    shop.smaregi.add_store("1", "Head Office")  # the store's name is the merchant's data: ASCII here
    paths = ("/settings/smaregi/test", f"/settings/channels/{shop.colorme_id}/test",
             f"/settings/channels/{shop.shopify_id}/test")
    client.post("/language", data={"lang": "en", "next": "/", "csrf_token": logged_in.token("/")})
    smaregi, colorme, shopify = (flashes(client, logged_in, path) for path in paths)
    assert smaregi == "Smaregi connection OK: 1 product / store 1 Head Office"
    assert colorme == ("Main Street connection failed: The credentials were refused. "
                       "(Details: ColorMe refused the access token (401))")
    assert shopify.startswith("Outlet connection failed: No answer, or the service is busy or under maintenance.")
    client.post("/language", data={"lang": "ja", "next": "/", "csrf_token": logged_in.token("/")})
    smaregi, colorme, shopify = (flashes(client, logged_in, path) for path in paths)
    assert smaregi == "スマレジに正常に接続できました：商品 1 件 / 店舗 1 Head Office"
    assert colorme == ("Main Streetへの接続に失敗しました：認証情報が受け付けられませんでした。"
                       "（詳細: ColorMe refused the access token (401)）")
    assert shopify.startswith("Outletへの接続に失敗しました：応答がないか、混雑中またはメンテナンス中です。")


@pytest.mark.parametrize(("cause", "source", "ja", "en"), [
    ("smaregi:02:sale", "inbox:7", ("売上（スマレジ）", "在庫通知 #7"), ("Sale (Smaregi)", "Stock notification #7")),
    ("smaregi:12:return", "inbox:7,8,…", ("返品（スマレジ）", "在庫通知 #7, #8, …"),
     ("Return (Smaregi)", "Stock notification #7, #8, …")),
    ("smaregi:99", None, ("スマレジの在庫変動（区分 99）", ""), ("Smaregi stock change (division 99)", "")),
    ("smaregi:notification", "inbox:3", ("スマレジからの在庫変動通知", "在庫通知 #3"),
     ("Stock change notified by Smaregi", "Stock notification #3")),
    ("smaregi:backfill", "backfill", ("スマレジとの定期照合", "定期照合"),
     ("Periodic check against Smaregi", "Periodic check")),
    ("merchant:release_adjust", None, ("確認待ちの解除時にスマレジの在庫数に合わせて調整", ""),
     ("Matched to Smaregi on release from the confirmation queue", "")),
])
def test_each_ledger_cause_and_source_has_words_in_both_languages(app, cause, source, ja, en):
    """Every cause stocklink writes, and a Smaregi division it does not know, read as words."""
    from flask_babel import force_locale
    with app.test_request_context():
        for lang, expected in (("ja", ja), ("en", en)):
            with force_locale(lang):
                assert (ledger_cause(cause), ledger_source(source)) == expected


def test_every_smaregi_stock_division_has_a_name():
    """Smaregi's 在庫区分 01–18 (platform-apis-smaregi §4.1) each read as a word, none as its code."""
    from stocklink.domain.delta import StockDivision
    assert set(DIVISIONS) == set(StockDivision)
