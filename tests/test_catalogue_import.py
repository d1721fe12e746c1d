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


# --- channel catalogues ------------------------------------------------------------------------

def _listings(app, channel_id: int) -> dict[str, tuple]:
    from stocklink.models import Listing
    with app.app_context():
        return {row.identifier: (row.sku, row.product.product_code if row.product else None, row.link_problem,
                                 row.last_confirmed_quantity, row.removed_at is not None)
                for row in db.session.scalars(select(Listing).where(Listing.channel_id == channel_id))}


def _import_smaregi(runner):
    result = runner.invoke(args=["catalogue", "import", "smaregi"])
    assert result.exit_code == 0, result.output


def test_colorme_import_links_variants_by_model_number_and_becomes_the_base_channel(app, smaregi_sample, smaregi,
                                                                                   colorme, runner):
    """Every ColorMe product and option variant arrives with its stock; variants whose 型番 equals a
    Smaregi product code are linked, the rest are named; the first channel is the base channel."""
    from tests.e2e_helpers import add_channel
    _import_smaregi(runner)
    shirt = colorme.add_product("Tシャツ", stocks=None, variants=[
        {"option1_value": "白", "option2_value": "S", "stocks": 4, "model_number": "TS01-WH-S"},
        {"option1_value": "白", "option2_value": "M", "stocks": 2, "model_number": "TS01-WH-M"},
        {"option1_value": "黒", "option2_value": "S", "stocks": 1, "model_number": "NOT-IN-SMAREGI"}])
    mug = colorme.add_product("マグカップ", stocks=7, model_number="MUG01")
    wrap = colorme.add_product("ラッピング", stocks=0, model_number="WRAP01")
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    result = runner.invoke(args=["catalogue", "import", "カラーミー"])
    assert result.exit_code == 0, result.output
    assert "imported 5 item(s): 5 new" in result.output and "4 linked, 2 with a problem" in result.output
    listings = _listings(app, channel_id)
    assert listings[f"{shirt}:白:S"] == ("TS01-WH-S", "TS01-WH-S", None, 4, False)
    assert listings[f"{shirt}:白:M"][1:3] == ("TS01-WH-M", None)
    assert listings[f"{shirt}:黒:S"][1:3] == (None, "no_match")
    assert listings[str(mug)] == ("MUG01", "MUG01", None, 7, False)
    assert listings[str(wrap)][1:3] == ("WRAP01", "not_stock_managed")
    from stocklink.models import Channel
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        assert channel.is_base and channel.catalogue_imported_at is not None

    # Again, after the shop dropped a variant: marked removed, nothing doubled, links kept.
    colorme.products[shirt]["variants"].pop(1)
    assert runner.invoke(args=["catalogue", "import", "カラーミー"]).exit_code == 0
    again = _listings(app, channel_id)
    assert len(again) == 5 and again[f"{shirt}:白:M"][4] is True and again[str(mug)][1] == "MUG01"


def test_shopify_and_nextengine_imports_link_by_sku_and_goods_code(app, smaregi_sample, smaregi, colorme, shopify,
                                                                   nextengine_world, runner):
    """A later channel links by its own key (Shopify SKU, NextEngine 商品コード) and does not take
    the base channel from the first."""
    from stocklink.models import Channel
    from tests.e2e_helpers import add_channel
    _import_smaregi(runner)
    ne_sandbox, ne_id = nextengine_world
    colorme.add_product("マグカップ", stocks=7, model_number="MUG01")
    [mug_item, ghost_item] = shopify.add_product("マグカップ", [{"sku": "MUG01", "available": 3},
                                                          {"sku": "GHOST", "available": 1, "title": "幻"}])
    ne_sandbox.add_goods("MUG01", 5, name="マグカップ")
    first = add_channel(app, colorme, "colorme", "カラーミー店")
    shop_id = add_channel(app, shopify, "shopify", "Shopify店")
    for name in ("カラーミー店", "Shopify店", "ネクストエンジン"):
        result = runner.invoke(args=["catalogue", "import", name])
        assert result.exit_code == 0, (name, result.output)
    assert _listings(app, shop_id)[str(mug_item)][:4] == ("MUG01", "MUG01", None, 3)
    assert _listings(app, shop_id)[str(ghost_item)][2] == "no_match"
    assert _listings(app, ne_id)["MUG01"][:4] == ("MUG01", "MUG01", None, 5)
    with app.app_context():
        assert [c.id for c in db.session.scalars(select(Channel).where(Channel.is_base.is_(True)))] == [first]


def test_a_revoked_channel_token_fails_the_import_with_the_reason_and_keeps_what_was_there(app, colorme, runner):
    """The shop revoked the token: the command exits non-zero naming the refusal; nothing is lost."""
    from tests.e2e_helpers import add_channel
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    colorme.add_product("マグカップ", stocks=7, model_number="MUG01")
    assert runner.invoke(args=["catalogue", "import", "カラーミー"]).exit_code == 0
    colorme.revoke_tokens()
    result = runner.invoke(args=["catalogue", "import", "カラーミー"])
    assert result.exit_code != 0 and "import failed" in result.output
    assert len(_listings(app, channel_id)) == 1
    with app.app_context():
        row = latest("channel", channel_id)
        assert row.state == "failed" and "credentials refused" in row.message
