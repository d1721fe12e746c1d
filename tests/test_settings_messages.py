"""A refused setting is named by its label and explained in the reader's language on the console;
TOML loading and the CLI keep the English sentence naming the key."""
from __future__ import annotations

import html
import re
import textwrap

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, Setting
from stocklink.platforms.declaration import InvalidSetting
from stocklink.services import merchant_settings
from stocklink.services.merchant_settings import SettingsError
from stocklink.services.provisioning import load_file

SHOPIFY_FORM = {"kind": "shopify", "name": "Shopify", "base_url": "https://shop1.myshopify.com", "enabled": "1",
                "settings_shown": "1", "set_location_id": "", "cred_access_token": "shpat"}


def _speak(client, lang: str, token: str) -> None:
    client.post("/language", data={"lang": lang, "next": "/", "csrf_token": token})


def _flashes(response) -> list[str]:
    page = response.get_data(as_text=True)
    return [html.unescape(m) for m in re.findall(r'<p class="flash error">(.*?)</p>', page)]


def _toml(tmp_path, body: str) -> str:
    path = tmp_path / "shop.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("lang, location, sentence", [
    ("ja", "", "保存できませんでした：ロケーションIDを入力してください"),
    ("en", "", "Not saved: Location ID is required"),
    ("ja", "store-1",
     "保存できませんでした：ロケーションIDは数字のIDか gid://shopify/Location/… の形で入力してください"),
    ("en", "store-1", "Not saved: Location ID must be a location id (digits) or gid://shopify/Location/…"),
])
def test_a_shopify_form_without_a_usable_location_says_why_in_the_readers_language(app, client, logged_in, lang,
                                                                                  location, sentence):
    """The platform's own check (location id) is a sentence of the catalog, not English on a ja page."""
    token = logged_in.token("/settings/channels/new?kind=shopify")
    _speak(client, lang, token)
    response = client.post("/settings/channels/new",
                           data={**SHOPIFY_FORM, "set_location_id": location, "csrf_token": token})
    assert response.status_code == 400
    assert _flashes(response) == [sentence]
    with app.app_context():
        assert db.session.scalar(select(Channel.id)) is None


@pytest.mark.parametrize("lang, sentence", [
    ("ja", "保存できませんでした：在庫数の下限は在庫数の上限以下にしてください"),
    ("en", "Not saved: Stock range minimum must not be above Stock range maximum"),
])
def test_a_channel_range_upside_down_names_both_fields_by_their_labels(app, client, logged_in, lang, sentence):
    """The other field a reason names (range_max) is shown by its label too."""
    token = logged_in.token("/settings/channels/new?kind=colorme")
    _speak(client, lang, token)
    response = client.post("/settings/channels/new", data={
        "csrf_token": token, "kind": "colorme", "name": "カラーミー", "range_min": "10", "range_max": "5",
        "cred_access_token": "tok"})
    assert response.status_code == 400
    assert _flashes(response) == [sentence]


@pytest.mark.parametrize("path, form, lang, sentence", [
    ("/settings/notify", {"notify.low_stock_threshold": "many"}, "ja",
     "保存できませんでした：在庫僅少のしきい値（全商品共通）は整数で入力してください"),
    ("/settings/notify", {"notify.low_stock_threshold": "many"}, "en",
     "Not saved: Low-stock threshold (all products) must be an integer"),
    ("/settings/notify", {"notify.low_stock_threshold": "-1"}, "ja",
     "保存できませんでした：在庫僅少のしきい値（全商品共通）は0以上にしてください"),
    ("/settings/notify", {"notify.error_to": "shop@example.jp, nobody"}, "ja",
     "保存できませんでした：エラー通知の送信先に正しくないメールアドレスがあります：nobody"),
    ("/settings/notify", {"notify.error_to": "shop@example.jp, nobody"}, "en",
     "Not saved: Error mail to not an e-mail address: nobody"),
    ("/settings/smaregi", {"smaregi.legacy_base_url": "ftp://x"}, "ja",
     "保存できませんでした：旧APIのURLは http:// または https:// で始まるURLを入力してください"),
    ("/settings/smaregi", {"smaregi.legacy_base_url": "ftp://x"}, "en",
     "Not saved: Legacy API URL must be an http(s) URL"),
])
def test_a_bad_setting_on_the_settings_screen_is_named_by_its_label_in_the_readers_language(
        app, client, logged_in, path, form, lang, sentence):
    """Smaregi and notification forms: the label the merchant typed into, then the reason."""
    token = logged_in.token("/settings/")
    _speak(client, lang, token)
    response = client.post(path, data={**form, "csrf_token": token}, follow_redirects=True)
    assert _flashes(response) == [sentence]
    with app.app_context():
        assert db.session.scalar(select(Setting.key)) is None  # nothing of the form was saved


@pytest.mark.parametrize("body, line", [
    ("""
        [[channels]]
        kind = "shopify"
        name = "Shopify"
        base_url = "https://shop1.myshopify.com"
     """, "channels[0].settings.location_id: is required"),
    ("""
        [[channels]]
        kind = "shopify"
        name = "Shopify"
        base_url = "https://shop1.myshopify.com"
        settings = { location_id = "1", api_version = "latest" }
     """, "channels[0].settings.api_version: must look like 2026-04"),
    ("""
        [notify]
        low_stock_threshold = 1_000_000_000
     """, "notify.low_stock_threshold: must be at most 999999999"),
    ("""
        [[channels]]
        kind = "colorme"
        name = "c"
        poll_interval_s = 5
     """, "channels[0].poll_interval_s: must be an integer from 60 to 86400"),
])
def test_config_load_still_reports_the_english_sentence_naming_the_key(app, runner, tmp_path, body, line):
    """`flask config load` is read by a hosting provider: the key as written in the file, in English."""
    result = runner.invoke(args=["config", "load", _toml(tmp_path, body)])
    assert result.exit_code != 0
    assert f"not loaded, nothing saved: {line}" in result.output


def test_a_refused_setting_carries_its_sentence_as_template_and_parameters(app, tmp_path):
    """The English message is the template filled in; the template and parameters travel with it
    through TOML loading (a platform's check re-raised under the channel's key)."""
    with app.app_context():
        with pytest.raises(SettingsError) as refused:
            merchant_settings.save({"notify.low_stock_threshold": "1000000000"})
        assert (refused.value.template, refused.value.params) == ("must be at most %(maximum)s",
                                                                  {"maximum": 999_999_999})
        assert refused.value.message == "must be at most 999999999"
        with pytest.raises(SettingsError) as refused:
            load_file(_toml(tmp_path, """
                [[channels]]
                kind = "shopify"
                name = "Shopify"
                base_url = "https://shop1.myshopify.com"
                settings = { location_id = "store-1" }
            """))
    assert refused.value.key == "channels[0].settings.location_id"
    assert refused.value.template == "must be a location id (digits) or %(example)s"
    assert str(refused.value) == ("channels[0].settings.location_id: must be a location id (digits) or "
                                  "gid://shopify/Location/…")


def test_a_plain_value_error_from_a_check_is_kept_as_its_own_words():
    """A platform module whose check raises a bare ValueError still names the key; its reason is
    used as is (untranslated), and a % in it is not taken for a parameter."""
    refused = InvalidSetting.from_reason("shop_code", ValueError("must be 100% letters"))
    assert (refused.message, refused.template, refused.params) == ("must be 100% letters",
                                                                   "must be 100% letters", {})
