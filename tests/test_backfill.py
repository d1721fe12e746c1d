"""Backfill from Smaregi (SPEC §11.2): a dropped notification costs minutes, not drift."""
from __future__ import annotations

import pytest

from stocklink.infra.extensions import db
from stocklink.infra.queues import get_redis
from stocklink.jobs.backfill import WATERMARK_KEY, backfill_stock
from stocklink.models import Channel, Listing, Product, StockLedger
from stocklink.services import merchant_settings
from stocklink.services.channel_clients import save_credentials

pytest_plugins = ["tests.fixtures_platforms"]


@pytest.fixture
def setup(app, smaregi_sandbox, smaregi_server, colorme):
    """Smaregi with no notification URL (every send is 'dropped'), one product linked to ColorMe."""
    smaregi = smaregi_sandbox
    smaregi.add_product("8000001", "Tシャツ", code="TS-1", stock=10, store_id="1")
    smaregi.add_product("8000002", "店頭限定", code="SHOP-1", stock=5, store_id="1")
    item = colorme.add_product("Tシャツ", stocks=10, model_number="TS-1")
    with app.app_context():
        merchant_settings.save({"smaregi.api_generation": "legacy", "smaregi.contract_id": smaregi.contract_id,
                       "smaregi.access_token": smaregi.access_token, "smaregi.store_id": "1",
                       "smaregi.legacy_base_url": f"{smaregi_server.url}/access/",
                       "smaregi.platform_id_base_url": smaregi_server.url,
                       "smaregi.platform_api_base_url": smaregi_server.url,
                       "smaregi.client_id": smaregi.client_id, "smaregi.client_secret": smaregi.client_secret})
        channel = Channel(kind="colorme", name="カラーミー", base_url=colorme.url, settings={})
        db.session.add(channel)
        db.session.flush()
        save_credentials(channel, {"access_token": colorme.issue_token()}, by_merchant=True)
        linked = Product(smaregi_product_id="8000001", product_code="TS-1", name="Tシャツ", smaregi_stock=10)
        store_only = Product(smaregi_product_id="8000002", product_code="SHOP-1", name="店頭限定", smaregi_stock=5)
        db.session.add_all([linked, store_only, Listing(channel=channel, product=linked, identifier=str(item),
                                                        last_confirmed_quantity=10)])
        db.session.commit()
    return smaregi, colorme, item


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_backfill_applies_a_change_whose_notification_was_lost(app, setup, jobs_runner, generation):
    """A sale Smaregi never notified reaches the channel through the backfill, on both API generations."""
    smaregi, colorme, item = setup
    with app.app_context():
        merchant_settings.save({"smaregi.api_generation": generation})
    smaregi.sell([("8000001", 3), ("8000002", 1)])
    assert smaregi.sends == []
    with app.app_context():
        assert backfill_stock() == "1 product(s) corrected"
    jobs_runner()
    assert colorme.stock(item) == 7
    with app.app_context():
        linked = db.session.query(Product).filter_by(smaregi_product_id="8000001").one()
        assert linked.smaregi_stock == 7
        ledger = db.session.query(StockLedger).filter_by(product_id=linked.id).one()
        assert (ledger.before, ledger.after, ledger.cause) == (10, 7, "smaregi:backfill")
        # A product without a listing is left alone: the notification flow decides about it.
        assert db.session.query(Product).filter_by(smaregi_product_id="8000002").one().smaregi_stock == 5
        assert get_redis().get(WATERMARK_KEY) is not None


def test_backfill_twice_changes_nothing_the_second_time(app, setup, jobs_runner):
    """Re-reading rows already applied writes no ledger row and pushes nothing."""
    smaregi, colorme, item = setup
    smaregi.sell([("8000001", 2)])
    with app.app_context():
        backfill_stock()
        jobs_runner()
        assert backfill_stock() == "0 product(s) corrected"
        assert db.session.query(StockLedger).count() == 1
    assert colorme.stock(item) == 8


def test_backfill_does_nothing_without_smaregi(app):
    """An instance not yet configured has nothing to backfill."""
    with app.app_context():
        assert backfill_stock() == "smaregi not configured"


def test_catalogue_refresh_stops_syncing_a_product_taken_out_of_stock_control(app, setup, jobs_runner):
    """A product switched to stockControlDivision 1 in Smaregi is marked unmanaged and no longer pushed."""
    from stocklink.jobs.catalogue import refresh_catalogue

    smaregi, colorme, item = setup
    smaregi.products["8000001"].stock_control_division = "1"
    with app.app_context():
        assert ", 1 updated," in refresh_catalogue()
        product = db.session.query(Product).filter_by(smaregi_product_id="8000001").one()
        assert product.stock_managed is False
    smaregi.sell([("8000001", 4)])
    with app.app_context():
        assert backfill_stock() == "0 product(s) corrected"
    jobs_runner()
    assert colorme.stock(item) == 10
