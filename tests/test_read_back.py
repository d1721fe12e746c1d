"""Read-back and reconciliation over real HTTP (SPEC §10, §11.6, §11.10; seed 002 差異商品・反映):
a merchant's edit on a channel becomes a difference that a later POS sale does not overwrite,
reflect and auto-heal write the total, a stale compare-and-set follows the same rule, and one
run reads no more than its budget."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from stocklink.infra.extensions import db
from stocklink.jobs.push import enqueue_push
from stocklink.jobs.read_back import read_back, read_back_channels
from stocklink.models import Channel, Listing
from stocklink.models._types import as_utc, utcnow
from stocklink.services import differences
from stocklink.services.read_back import READ_AGAIN_AFTER, ReadBackRun, _book
from tests.conftest import csrf_token
from tests.e2e_helpers import shopify_writes

pytest_plugins = ["tests.fixtures_platforms"]

A, B = "8300001", "8300002"


def listing_row(app, channel_id: int, product_id: int) -> dict:
    with app.app_context():
        listing = db.session.scalars(select(Listing).where(
            Listing.channel_id == channel_id, Listing.product_id == product_id)).one()
        return {"id": listing.id, "confirmed": listing.last_confirmed_quantity, "difference": listing.difference,
                "since": as_utc(listing.difference_since), "dirty": listing.dirty,
                "confirmed_at": as_utc(listing.last_confirmed_at)}


def shopify_difference(app, world, jobs_runner, smaregi_id=A, stock=20, edited=5):
    """A product at ``stock`` everywhere; the merchant edits Shopify to ``edited``; a read-back runs."""
    item = world.add(smaregi_id, f"RB-{smaregi_id}", "リネンシャツ", stock)
    world.shopify.set_stock(item["shopify"], edited)
    assert read_back(world.shopify_id).startswith("read 1, 1 differ")
    return item


def test_a_merchant_edit_is_a_difference_and_a_pos_sale_does_not_raise_it(app, world, jobs_runner):
    """Shopify edited 20 → 5 is read back as a difference; the next POS sale lowers ColorMe to 19 and
    leaves Shopify at 5 (the trial: Shopify must not be raised back to 19, SPEC §11.6)."""
    item = shopify_difference(app, world, jobs_runner)
    row = listing_row(app, world.shopify_id, item["product"])
    assert (row["confirmed"], row["difference"], row["since"] is not None) == (5, True, True)
    assert read_back(world.colorme_id).startswith("read 1, 0 differ")
    with app.app_context():
        assert db.session.get(Channel, world.shopify_id).last_read_back_at is not None
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    assert world.channel_stock(A) == (19, 5)
    assert shopify_writes(world.shopify, item["shopify"]) == []
    after = listing_row(app, world.shopify_id, item["product"])
    assert (after["confirmed"], after["difference"], after["since"], after["dirty"]) == (5, True, row["since"], False)


def test_a_sale_below_the_channel_value_still_lowers_it_and_ends_the_difference(app, world, jobs_runner):
    """Lowering is always allowed: a sale that takes the total below Shopify's 5 writes it, and the
    channel then agrees, so the difference is cleared."""
    item = shopify_difference(app, world, jobs_runner, stock=6, edited=5)
    world.smaregi.sell([(A, 3)])
    jobs_runner()
    assert world.channel_stock(A) == (3, 3)
    row = listing_row(app, world.shopify_id, item["product"])
    assert (row["confirmed"], row["difference"], row["since"]) == (3, False, None)


def test_reflect_writes_the_total_onto_the_difference(app, world, jobs_runner):
    """反映 (seed 002): the difference is cleared and the total pushed over the channel's value."""
    item = shopify_difference(app, world, jobs_runner)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    row = listing_row(app, world.shopify_id, item["product"])
    with app.app_context():
        channel_ids = differences.reflect([row["id"]])
        db.session.commit()
        for channel_id in channel_ids:
            enqueue_push(channel_id)
    jobs_runner()
    assert world.channel_stock(A) == (19, 19)
    assert [(w["quantity"], w["changeFromQuantity"]) for w in shopify_writes(world.shopify, item["shopify"])] \
        == [(19, 5)]
    after = listing_row(app, world.shopify_id, item["product"])
    assert (after["confirmed"], after["difference"], after["since"]) == (19, False, None)


def test_auto_heal_reflects_a_difference_once_it_is_older_than_the_grace_period(app, world, jobs_runner):
    """With heal-after set, a difference younger than it stays; one older is reflected by the read-back."""
    with app.app_context():
        db.session.execute(update(Channel).where(Channel.id == world.shopify_id).values(heal_after_minutes=10))
        db.session.commit()
    item = shopify_difference(app, world, jobs_runner)
    assert read_back(world.shopify_id).endswith("healed 0")
    assert world.shopify.stock(item["shopify"]) == 5
    row = listing_row(app, world.shopify_id, item["product"])
    with app.app_context():
        db.session.execute(update(Listing).where(Listing.id == row["id"]).values(
            difference_since=utcnow() - timedelta(minutes=11)))
        db.session.commit()
    assert read_back(world.shopify_id).endswith("healed 1")
    jobs_runner()
    assert world.channel_stock(A) == (20, 20)
    assert listing_row(app, world.shopify_id, item["product"])["difference"] is False


def test_without_heal_after_a_difference_waits_for_the_merchant(app, world, jobs_runner):
    """heal_after_minutes unset: however old the difference, the read-back does not overwrite it."""
    item = shopify_difference(app, world, jobs_runner)
    row = listing_row(app, world.shopify_id, item["product"])
    with app.app_context():
        db.session.execute(update(Listing).where(Listing.id == row["id"]).values(
            difference_since=utcnow() - timedelta(days=30), last_confirmed_at=utcnow() - READ_AGAIN_AFTER))
        db.session.commit()
    assert read_back(world.shopify_id).endswith("healed 0")
    jobs_runner()
    assert world.shopify.stock(item["shopify"]) == 5
    assert listing_row(app, world.shopify_id, item["product"])["difference"] is True


def test_a_stale_compare_and_set_does_not_raise_above_the_fresh_read(app, world, jobs_runner):
    """Shopify edited 20 → 5 with no read-back yet: the POS sale's compare-and-set (19 from 20) is
    stale; the fresh 5 counts as a read-back, so 19 is not written again over it — a difference."""
    item = world.add(A, "RB-CAS", "麻のストール", 20)
    world.shopify.set_stock(item["shopify"], 5)
    world.smaregi.sell([(A, 1)])
    jobs_runner()
    assert world.channel_stock(A) == (19, 5)
    assert [(w["quantity"], w["changeFromQuantity"]) for w in shopify_writes(world.shopify, item["shopify"])] \
        == [(19, 20)]
    row = listing_row(app, world.shopify_id, item["product"])
    assert (row["confirmed"], row["difference"], row["dirty"], row["since"] is not None) == (5, True, False, True)


def test_the_budget_limits_how_many_listings_one_run_reads(app, world, jobs_runner, monkeypatch):
    """ColorMe (2 req/s) read one item per request: a quarter of the rate over 10 s is 5 reads per
    run, the never-read first; the next run reads the rest; then none is due until READ_AGAIN_AFTER."""
    from stocklink.platforms.colorme import ColorMeClient
    monkeypatch.setattr(ColorMeClient, "read_batch", 1)
    products = [world.add(f"83100{n:02d}", f"BUD{n:02d}", f"靴下 {n}", 4)["product"] for n in range(7)]

    def stock_reads() -> int:
        with world.colorme.lock:
            return sum(1 for r in world.colorme.requests if r["method"] == "GET" and "stocks" in r["path"])

    assert read_back(world.colorme_id).startswith("read 5,")
    assert stock_reads() == 5
    read = [listing_row(app, world.colorme_id, p)["confirmed_at"] is not None for p in products]
    assert read == [True] * 5 + [False] * 2
    assert read_back(world.colorme_id).startswith("read 2,")
    assert read_back(world.colorme_id).startswith("read 0,")
    assert stock_reads() == 7


def test_colorme_reads_fifty_products_a_request(app, world, jobs_runner):
    """GET /v1/stocks takes 50 product ids: seven listings are read back in one request."""
    for n in range(7):
        world.add(f"83200{n:02d}", f"BAT{n:02d}", f"靴下 {n}", 4)
    assert read_back(world.colorme_id).startswith("read 7,")
    with world.colorme.lock:
        assert sum(1 for r in world.colorme.requests if r["method"] == "GET" and "stocks" in r["path"]) == 1


def test_dirty_listings_are_not_read_back(app, world, jobs_runner):
    """A listing with a push waiting is not compared (its difference is not settled yet)."""
    item = world.add(A, "RB-DIRTY", "手ぬぐい", 8)
    world.shopify.set_stock(item["shopify"], 2)
    with app.app_context():
        db.session.execute(update(Listing).where(Listing.product_id == item["product"]).values(
            dirty=True, fact_at=utcnow()))
        db.session.commit()
    assert read_back(world.shopify_id).startswith("read 0,")
    assert listing_row(app, world.shopify_id, item["product"])["difference"] is False


def test_a_read_is_not_booked_onto_a_listing_a_push_confirmed_after_the_read_left(app, world):
    """The read-back does not take the push's lease; a push that confirmed the listing while the
    read was under way wins, and the older read is dropped."""
    item = world.add(A, "RB-RACE", "豆皿", 6)
    with app.app_context():
        before = utcnow()
        listing = db.session.scalars(select(Listing).where(
            Listing.channel_id == world.shopify_id, Listing.product_id == item["product"])).one()
        listing.last_confirmed_quantity, listing.last_confirmed_at = 6, utcnow()  # the push's booking
        db.session.commit()
        run = ReadBackRun()
        _book([listing], {listing.identifier: 1}, before, run)
        db.session.commit()
        assert run.booked == 0
    row = listing_row(app, world.shopify_id, item["product"])
    assert (row["confirmed"], row["difference"]) == (6, False)


def test_the_cron_job_enqueues_a_read_back_per_active_channel(app, world, jobs_runner):
    """read_back_channels queues one read-back per active channel; a stopped one is left out."""
    item = shopify_difference(app, world, jobs_runner, smaregi_id=B)
    world.colorme.set_stock(item["colorme"], 1)
    with app.app_context():
        db.session.execute(update(Channel).where(Channel.id == world.shopify_id).values(state="stopped"))
        db.session.execute(update(Listing).values(last_confirmed_at=utcnow() - READ_AGAIN_AFTER))
        db.session.commit()
        assert read_back_channels() == 1
    jobs_runner()
    assert listing_row(app, world.colorme_id, item["product"])["difference"] is True


def test_the_channel_form_sets_and_validates_heal_after(app, client, logged_in, world):
    """Blank is off, 1..10080 minutes is saved, anything else is refused by name and nothing changes."""
    url = f"/settings/channels/{world.shopify_id}"

    def post(value):
        with app.app_context():
            channel = db.session.get(Channel, world.shopify_id)
            form = {"csrf_token": csrf_token(client, url), "name": channel.name, "base_url": channel.base_url,
                    "enabled": "1", "range_min": "0", "range_max": str(channel.range_max),
                    "poll_interval_s": "180", "settings_shown": "1",
                    "set_location_id": str(channel.settings["location_id"]), "heal_after_minutes": value}
        return client.post(url, data=form)

    def stored():
        with app.app_context():
            return db.session.get(Channel, world.shopify_id).heal_after_minutes

    assert post("60").status_code == 303 and stored() == 60
    for bad in ("0", "10081", "soon"):
        response = post(bad)
        assert response.status_code == 400 and stored() == 60
        assert "差異を自動で反映するまでの時間（分）" in response.get_data(as_text=True)
    assert post("10080").status_code == 303 and stored() == 10080
    assert post("").status_code == 303 and stored() is None
