"""Importing Smaregi's catalogue and a channel's (SPEC §8, seed 002 商品登録): every product with
its stock, marked (never deleted) when it disappears, the first channel as the base channel, and
listings linked by the SKU rule."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.jobs.catalogue_import import latest, start_import
from stocklink.models import CatalogueImport, Product, StockLedger
from stocklink.sandbox.catalogue import sample_products
from tests.e2e_helpers import use_generation

pytest_plugins = ["tests.fixtures_platforms"]


def _products(app) -> dict[str, Product]:
    with app.app_context():
        rows = db.session.scalars(select(Product)).all()
        db.session.expunge_all()
        return {p.smaregi_product_id: p for p in rows}


@pytest.mark.parametrize("generation", ["legacy", "platform"])
def test_smaregi_import_brings_every_product_with_its_stock(app, smaregi_sample, smaregi, runner, generation):
    """Every product of the contract arrives with the configured store's stock, its variation label,
    group and stock-control division; each stock is a ledger row that says it came from the import."""
    use_generation(app, smaregi_sample, generation)
    result = runner.invoke(args=["catalogue", "import", "smaregi"])
    assert result.exit_code == 0, result.output
    samples = sample_products()
    assert f"imported {len(samples)} item(s): {len(samples)} new" in result.output
    products = _products(app)
    assert len(products) == len(samples)
    for sample in samples:
        product = products[sample.product_id]
        assert product.product_code == sample.code and product.name == sample.name
        assert product.group_code == sample.group_code
        assert product.stock_managed == (sample.stock_control_division != "1")
        if product.stock_managed:
            assert product.smaregi_stock == (sample.stock or 0), sample.code
        assert product.removed_at is None
    tshirt = next(p for p in products.values() if p.product_code and p.product_code.startswith("TS"))
    assert tshirt.variation and " / " in tshirt.variation
    assert "tシャツ" in tshirt.search_text or tshirt.name.casefold() in tshirt.search_text
    with app.app_context():
        causes = set(db.session.scalars(select(StockLedger.cause)))
        row = latest("smaregi")
        assert causes == {"catalogue_import"}
        assert (row.state, row.done, row.total, row.created) == ("done", len(samples), len(samples), len(samples))


def test_a_second_import_updates_adds_and_marks_removed_products_without_deleting(app, smaregi_sample, smaregi,
                                                                                  runner):
    """Run again: a renamed product is updated, a new one added, one Smaregi dropped is marked
    removed (and comes back unmarked if it returns); nothing is deleted or imported twice."""
    assert runner.invoke(args=["catalogue", "import", "smaregi"]).exit_code == 0
    first = sample_products()[0]
    smaregi_sample.products[first.product_id].name = "改名したTシャツ"
    gone = sample_products()[1].product_id
    dropped = smaregi_sample.products.pop(gone)
    smaregi_sample.add_product("8999999", "新商品 トートバッグ", code="TOTE-NEW", stock=4, store_id="1")
    result = runner.invoke(args=["catalogue", "import", "smaregi"])
    assert result.exit_code == 0, result.output
    assert "1 new" in result.output and "1 marked removed" in result.output
    products = _products(app)
    assert len(products) == len(sample_products()) + 1
    assert products[first.product_id].name == "改名したTシャツ"
    assert products[gone].removed_at is not None
    assert products["8999999"].smaregi_stock == 4 and products["8999999"].product_code == "TOTE-NEW"
    smaregi_sample.products[gone] = dropped
    assert runner.invoke(args=["catalogue", "import", "smaregi"]).exit_code == 0
    assert _products(app)[gone].removed_at is None


def test_a_refused_smaregi_token_fails_the_command_with_the_reason(app, smaregi_sample, smaregi, runner):
    """The command exits non-zero and names the reason; the import row says failed, nothing was added."""
    smaregi_sample.access_token = "rotated-elsewhere"
    result = runner.invoke(args=["catalogue", "import", "smaregi"])
    assert result.exit_code != 0
    assert "import failed" in result.output
    assert _products(app) == {}
    with app.app_context():
        row = latest("smaregi")
        assert row.state == "failed" and row.message


def test_an_unknown_channel_name_is_refused_with_the_names_there_are(app, runner):
    result = runner.invoke(args=["catalogue", "import", "楽天"])
    assert result.exit_code != 0 and "no channel named '楽天'" in result.output and "smaregi" in result.output


def test_starting_an_import_twice_gives_the_one_already_waiting(app, smaregi_sample, smaregi, jobs_runner):
    """A second click while the first import waits does not queue a second import; the job runs
    once, and running it again finds it done."""
    from stocklink.jobs.catalogue_import import import_catalogue
    with app.test_request_context():
        first, new_first = start_import("smaregi", requested_by="operator")
        second, new_second = start_import("smaregi", requested_by="operator")
        assert (new_first, new_second) == (True, False) and first.job_id == second.job_id
    jobs_runner()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(CatalogueImport)) == 1
        assert latest("smaregi").state == "done"
        assert import_catalogue(first.job_id) == "already done"
        assert db.session.scalar(select(func.count()).select_from(Product)) == len(sample_products())


def test_a_row_whose_job_is_gone_shows_as_interrupted(app, redis_server):
    """A worker killed mid-import (its lease gone, its RQ job lost): the row is shown failed, not
    running forever, so the merchant can run it again."""
    with app.app_context():
        db.session.add(CatalogueImport(job_id="import-lost", source="smaregi", state="running"))
        db.session.commit()
        row = latest("smaregi")
        assert (row.state, row.message) == ("failed", "interrupted")
