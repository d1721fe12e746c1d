"""One platform registry: each kind declared once, its settings checked where they are entered."""
from __future__ import annotations

import textwrap

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, ErrorRecord, Listing, Product
from stocklink.models._types import utcnow
from stocklink.platforms import registry
from stocklink.sandbox.server import serve_in_thread
from stocklink.services.merchant_settings import SettingsError
from stocklink.services.merchant_text import error_text
from stocklink.services.provisioning import load_file
from tests import fake_platform
from tests.conftest import csrf_token


@pytest.fixture
def fakemart():
    """The eighth kind: its module, its sandbox, and the one registration line."""
    registry.register(fake_platform.PLATFORM)
    stock = {"FM-1": 3, "FM-2": 7}
    server = serve_in_thread(fake_platform.create_sandbox("key-1", "shop9", stock))
    yield server.url, stock
    server.stop()
    registry.PLATFORMS.pop("fakemart")


def _toml(tmp_path, body: str) -> str:
    path = tmp_path / "shop.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def test_an_eighth_kind_is_provisioned_shown_and_pushed_from_its_declaration(app, client, logged_in, fakemart,
                                                                             tmp_path, jobs_runner):
    """TOML, the channel form and the push all work for a kind no other module knows of."""
    url, stock = fakemart
    with app.app_context():
        with pytest.raises(SettingsError) as refused:
            load_file(_toml(tmp_path, """
                [[channels]]
                kind = "fakemart"
                name = "FM"
                credentials = { api_key = "key-1" }
            """))
        assert refused.value.key == "channels[0].settings.shop_code"
        assert db.session.scalar(select(Channel.id)) is None  # nothing saved
        load_file(_toml(tmp_path, f"""
            [[channels]]
            kind = "fakemart"
            name = "FM"
            base_url = "{url}"
            credentials = {{ api_key = "key-1" }}
            settings = {{ shop_code = "shop9" }}
        """))
        channel = db.session.scalars(select(Channel)).one()
        assert (channel.kind, channel.range_max, channel.settings) == ("fakemart", 50, {"shop_code": "shop9"})
        product = Product(smaregi_product_id="8100001", name="FM item", smaregi_stock=12)
        db.session.add(product)
        db.session.flush()
        db.session.add(Listing(channel_id=channel.id, product_id=product.id, identifier="FM-1", dirty=True,
                               fact_at=utcnow()))
        db.session.commit()
        channel_id = channel.id
    page = client.get(f"/settings/channels/{channel_id}").get_data(as_text=True)
    assert "API key" in page and "Shop code" in page and 'value="shop9"' in page
    assert "Refresh token" not in page and "リフレッシュトークン" not in page  # another kind's field

    from stocklink.jobs.push import enqueue_push
    with app.app_context():
        enqueue_push(channel_id)
    jobs_runner()
    assert stock == {"FM-1": 12, "FM-2": 7}
    with app.app_context():
        listing = db.session.scalars(select(Listing)).one()
        assert (listing.dirty, listing.last_confirmed_quantity) == (False, 12)


def test_new_channel_form_asks_for_the_kind_then_shows_only_its_fields(client, logged_in):
    """/settings/channels/new lists the kinds; ?kind=shopify shows Shopify's fields with labels."""
    first = client.get("/settings/channels/new").get_data(as_text=True)
    assert 'name="kind"' in first and "カラーミーショップ" in first and "ネクストエンジン" in first
    assert 'name="cred_' not in first
    page = client.get("/settings/channels/new?kind=shopify").get_data(as_text=True)
    assert "Admin API アクセストークン" in page and "ロケーションID" in page
    assert 'name="cred_access_token"' in page and 'name="set_location_id"' in page
    assert "リフレッシュトークン" not in page and "access_token <" not in page


@pytest.mark.parametrize("location, message", [("", "ロケーションIDを入力してください"),
                                               ("store-1", "ロケーションIDは数字のIDか")])
def test_a_shopify_channel_without_a_usable_location_is_refused_on_the_form(app, client, logged_in, location,
                                                                           message):
    """The merchant sees which field is wrong, by its label; nothing is saved."""
    token = csrf_token(client, "/settings/channels/new?kind=shopify")
    response = client.post("/settings/channels/new", data={
        "csrf_token": token, "kind": "shopify", "name": "Shopify", "base_url": "https://shop1.myshopify.com",
        "enabled": "1", "settings_shown": "1", "set_location_id": location, "cred_access_token": "shpat"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html and "is required" not in html and "must be" not in html
    with app.app_context():
        assert db.session.scalar(select(Channel.id)) is None
    ok = client.post("/settings/channels/new", data={
        "csrf_token": token, "kind": "shopify", "name": "Shopify", "base_url": "https://shop1.myshopify.com",
        "enabled": "1", "settings_shown": "1", "set_location_id": "1001", "cred_access_token": "shpat"})
    assert ok.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(Channel)).one().settings == {"location_id": "1001"}


@pytest.mark.parametrize("settings, key", [
    ("{}", "channels[0].settings.location_id"),
    ('{ location_id = "abc" }', "channels[0].settings.location_id"),
    ('{ location_id = "1", api_version = "latest" }', "channels[0].settings.api_version"),
    ('{ location_id = "1", colour = "red" }', "channels[0].settings.colour"),
])
def test_shopify_settings_in_toml_are_checked_by_name(app, tmp_path, settings, key):
    with app.app_context(), pytest.raises(SettingsError) as refused:
        load_file(_toml(tmp_path, f"""
            [[channels]]
            kind = "shopify"
            name = "Shopify"
            base_url = "https://shop1.myshopify.com"
            settings = {settings}
        """))
    assert refused.value.key == key


def test_shopify_needs_the_shops_own_base_url(app, tmp_path):
    """No default host: the template https://{shop}.myshopify.com is not a URL to push to."""
    with app.app_context(), pytest.raises(SettingsError) as refused:
        load_file(_toml(tmp_path, """
            [[channels]]
            kind = "shopify"
            name = "Shopify"
            settings = { location_id = "1" }
        """))
    assert refused.value.key == "channels[0].base_url"


def test_a_stored_channel_with_broken_settings_stops_with_an_error_naming_the_field(app, jobs_runner):
    """Settings saved before they were checked: the push stops the channel (level 9) and says why,
    instead of failing and retrying unseen."""
    from stocklink.jobs.push import enqueue_push
    with app.app_context():
        channel = Channel(kind="shopify", name="Shopify", base_url="https://shop1.myshopify.com", settings={})
        db.session.add(channel)
        db.session.flush()
        db.session.add(Listing(channel_id=channel.id, identifier="1", dirty=True, fact_at=utcnow()))
        db.session.commit()
        channel_id = channel.id
        enqueue_push(channel_id)
    jobs_runner()
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        [error] = db.session.scalars(select(ErrorRecord)).all()
        assert (channel.state, error.level, error.kind) == ("stopped", 9, "auth")
        assert (error.message_key, error.message_params) == ("channel_settings", {"field": "settings.location_id"})
        assert "設定「ロケーションID」" in error_text(error) and error.message == "is required"


def test_the_registry_holds_each_declared_platform_once():
    """Label, production host, range and client come from each platform module's declaration."""
    from stocklink.platforms import colorme, nextengine, shopify
    assert registry.PLATFORMS == {"colorme": colorme.PLATFORM, "nextengine": nextengine.PLATFORM,
                                  "shopify": shopify.PLATFORM}
    assert registry.PLATFORMS["nextengine"].delta and not registry.PLATFORMS["colorme"].delta
    assert registry.PLATFORMS["shopify"].client is shopify.ShopifyClient
    assert registry.label_of("rakuten") == "rakuten"  # a kind no longer registered shows as itself
