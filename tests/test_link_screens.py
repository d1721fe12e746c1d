"""The catalogue import screen, the link screen (紐づけ) and the dashboard's setup checklist,
driven as a merchant drives them: forms with their CSRF token, the rows checked afterwards."""
from __future__ import annotations

import re

from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import CatalogueImport, Channel, Listing, Product
from stocklink.services import search_text
from tests.conftest import csrf_token
from tests.e2e_helpers import add_channel

pytest_plugins = ["tests.fixtures_platforms"]


def post(client, path: str, data: dict | None = None, page: str = "/"):
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)})


def make_catalogue(app, channel_id: int, items: list[tuple[str, str | None]]) -> dict[str, int]:
    """Smaregi products TS-1..3 and WRAP (not stock-managed), and unlinked channel items
    ``(identifier, sku)`` as an import leaves them; returns listing ids by identifier."""
    with app.app_context():
        db.session.add_all([Product(smaregi_product_id=f"800000{i}", product_code=f"TS-{i}", name=f"Tシャツ {i}",
                                    smaregi_stock=10 * i) for i in (1, 2, 3)])
        db.session.add(Product(smaregi_product_id="8000009", product_code="WRAP", name="ラッピング",
                               stock_managed=False))
        db.session.add_all([Listing(channel_id=channel_id, identifier=identifier, sku=sku, title=f"商品 {identifier}")
                            for identifier, sku in items])
        db.session.commit()
        search_text.refresh_products()
        search_text.refresh_listings()
        db.session.commit()
        return {listing.identifier: listing.id for listing in db.session.scalars(select(Listing))}


def listing(app, listing_id: int) -> tuple:
    with app.app_context():
        row = db.session.get(Listing, listing_id)
        code = row.product.product_code if row.product else None
        return code, row.link_problem


def test_auto_link_names_each_problem_and_the_screen_shows_the_fix(app, client, logged_in, colorme):
    """Auto-link links by code; no code, no match, stock management off and two items claiming
    one product are each named on the link screen with what to do."""
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    ids = make_catalogue(app, channel_id, [("1", "TS-1"), ("2", "TS-2"), ("3", "NOPE"), ("4", None),
                                           ("5", "WRAP"), ("6", " TS-2 ")])
    response = post(client, "/links/auto", {"channel_id": channel_id}, "/links/")
    assert response.status_code == 303
    assert listing(app, ids["1"]) == ("TS-1", None)
    assert listing(app, ids["2"]) == ("TS-2", "multiple") == listing(app, ids["6"])
    assert listing(app, ids["3"]) == (None, "no_match")
    assert listing(app, ids["4"]) == (None, "no_code")
    assert listing(app, ids["5"]) == ("WRAP", "not_stock_managed")
    html = client.get(f"/links/?channel={channel_id}&state=problem").get_data(as_text=True)
    assert "複数の商品が紐づいています" in html and "在庫管理対象外" in html
    assert '<p class="count">5件</p>' in html  # two claiming TS-2, no match, no code, not stock-managed


def test_unlinking_one_of_two_clears_multiple_and_auto_link_leaves_it_alone(app, client, logged_in, colorme):
    """Unlink the duplicate: the other is synced again; the unlinked item stays in stocklink
    (nothing is deleted on the channel) and a later auto-link does not link it back."""
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    ids = make_catalogue(app, channel_id, [("2", "TS-2"), ("6", "TS-2")])
    post(client, "/links/auto", {"channel_id": channel_id}, "/links/")
    assert listing(app, ids["2"])[1] == listing(app, ids["6"])[1] == "multiple"
    assert post(client, f"/links/{ids['6']}/unlink", page="/links/").status_code == 303
    assert listing(app, ids["2"]) == ("TS-2", None)
    assert listing(app, ids["6"]) == (None, "unlinked")
    post(client, "/links/auto", {"channel_id": channel_id}, "/links/")
    assert listing(app, ids["6"]) == (None, "unlinked")


def test_link_by_hand_then_the_channel_is_read_back(app, client, logged_in, colorme, jobs_runner):
    """Choose a product on the link page: the item is linked, then read back from the channel, which
    gives its confirmed stock; an item the channel does not know is marked so."""
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    known = colorme.add_product("Tシャツ", stocks=6)
    ids = make_catalogue(app, channel_id, [(str(known), "OTHER-CODE"), ("999999", "GONE")])
    page = client.get(f"/links/{ids[str(known)]}?q=ｔシャツ,3").get_data(as_text=True)
    assert "TS-3" in page and "TS-1" not in page  # full-width, case-folded, commas = AND
    with app.app_context():
        product_id = db.session.scalar(select(Product.id).where(Product.product_code == "TS-3"))
    response = post(client, f"/links/{ids[str(known)]}/link", {"product_id": product_id}, "/links/")
    assert response.status_code == 303
    post(client, f"/links/{ids['999999']}/link", {"product_id": product_id - 1}, "/links/")
    jobs_runner()
    with app.app_context():
        linked = db.session.get(Listing, ids[str(known)])
        assert (linked.product.product_code, linked.link_problem, linked.last_confirmed_quantity) == ("TS-3", None, 6)
        assert db.session.get(Listing, ids["999999"]).link_problem == "unknown_item"


def test_a_link_to_no_product_is_refused_and_changes_nothing(app, client, logged_in, colorme):
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    ids = make_catalogue(app, channel_id, [("1", "X")])
    response = post(client, f"/links/{ids['1']}/link", {"product_id": "12345"}, "/links/")
    assert response.status_code == 303 and f"/links/{ids['1']}" in response.headers["Location"]
    assert listing(app, ids["1"]) == (None, None)
    assert "紐づけるスマレジ商品を選んでください" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_link_forms_refuse_a_post_without_the_csrf_token(app, client, logged_in, colorme):
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    ids = make_catalogue(app, channel_id, [("1", "TS-1")])
    for path in (f"/links/{ids['1']}/link", f"/links/{ids['1']}/unlink", "/links/auto", "/catalogue/import/smaregi",
                 f"/catalogue/import/channel/{channel_id}"):
        assert client.post(path, data={"channel_id": channel_id, "product_id": 1}).status_code == 400, path
    assert listing(app, ids["1"]) == (None, None)


def test_the_import_button_runs_a_job_whose_status_polls_only_while_running(app, client, logged_in, smaregi_sample,
                                                                          smaregi, jobs_runner):
    """The Smaregi import button queues a job; its status fragment polls itself while it waits and
    stops polling once it is done, showing what it did."""
    assert post(client, "/catalogue/import/smaregi", page="/catalogue/").status_code == 303
    with app.app_context():
        job_id = db.session.scalar(select(CatalogueImport.job_id))
    waiting = client.get(f"/catalogue/imports/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in waiting and "<html" not in waiting
    jobs_runner()
    done = client.get(f"/catalogue/imports/{job_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "hx-trigger" not in done and "完了" in done
    assert 'id="count-smaregi" hx-swap-oob="true"' in done  # the card's count follows without a reload
    page = client.get("/catalogue/").get_data(as_text=True)
    assert re.search(r"stocklinkの商品：\d+件", page)


def test_setup_checklist_ticks_each_step_as_it_is_done(app, client, logged_in, smaregi_sample, smaregi, colorme,
                                                      jobs_runner):
    """On an empty instance every step but the configured Smaregi is open; importing and linking
    tick the rest; the list goes away when all are done."""
    html = client.get("/").get_data(as_text=True)
    assert "はじめての設定" in html
    assert html.count('class="done"') == 1  # the smaregi fixture configured the credentials
    runner = app.test_cli_runner()
    assert runner.invoke(args=["catalogue", "import", "smaregi"]).exit_code == 0
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="done"') == 3  # credentials, Smaregi import, a channel
    assert f"/catalogue/import/channel/{channel_id}" in html
    with app.app_context():
        channel = db.session.get(Channel, channel_id)
        product = db.session.scalars(select(Product)).first()
        db.session.add(Listing(channel_id=channel_id, identifier="1", product_id=product.id))
        channel.catalogue_imported_at = product.created_at
        sold = product.smaregi_product_id
        db.session.commit()
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="done"') == 5  # only the webhook (no notification yet) is open
    assert smaregi_sample.sell([(sold, 1)])
    smaregi_sample.wait_for_sends()
    assert "はじめての設定" not in client.get("/").get_data(as_text=True)


def test_release_with_adjust_works_once_the_product_is_linked_here(app, client, logged_in, world, jobs_runner):
    """A product Smaregi notified before stocklink knew it waits in the confirmation queue; after
    the Smaregi import and a link made on the link screen, "release and adjust now" releases it and
    the channel gets Smaregi's stock (it used to answer 0 released)."""
    from stocklink.models import ConfirmationItem
    world.smaregi.add_product("8300001", "新作マグ", code="MUG-NEW", stock=9)
    world.smaregi.sell([("8300001", 2)])
    jobs_runner()
    with app.app_context():
        [item_id] = db.session.scalars(select(ConfirmationItem.id)).all()
    assert app.test_cli_runner().invoke(args=["catalogue", "import", "smaregi"]).exit_code == 0
    shop_item = world.colorme.add_product("新作マグ", stocks=9)
    with app.app_context():
        db.session.add(Listing(channel_id=world.colorme_id, identifier=str(shop_item), sku="MUG-NEW-CM"))
        db.session.commit()
        listing_id = db.session.scalar(select(Listing.id).where(Listing.identifier == str(shop_item)))
        product_id = db.session.scalar(select(Product.id).where(Product.smaregi_product_id == "8300001"))
    post(client, f"/links/{listing_id}/link", {"product_id": product_id}, "/links/")
    response = client.post("/confirmations/release", data={"ids": str(item_id), "adjust": "1"},
                           headers={"HX-Request": "true", "X-CSRFToken": csrf_token(client, "/confirmations/")})
    assert "1件" in response.get_data(as_text=True)
    jobs_runner()
    assert world.colorme.stock(shop_item) == 7 == world.smaregi.stock_of("8300001")


def test_a_second_link_key_set_in_settings_links_by_the_smaregi_id(app, client, logged_in, colorme):
    """With 紐づけ条件 extended to the Smaregi product id (Settings → Sync rules), an item whose code
    is a product's Smaregi id is linked; without it, it is not."""
    channel_id = add_channel(app, colorme, "colorme", "カラーミー")
    ids = make_catalogue(app, channel_id, [("1", "8000002")])
    post(client, "/links/auto", {"channel_id": channel_id}, "/links/")
    assert listing(app, ids["1"]) == (None, "no_match")
    response = post(client, "/settings/sync", {"sync.unlinkable_mode": "skip", "sync.link_second_key": "smaregi_id",
                                               "csv.encoding": "cp932"}, "/settings/")
    assert response.status_code == 303
    post(client, "/links/auto", {"channel_id": channel_id}, "/links/")
    assert listing(app, ids["1"]) == ("TS-2", None)
    bad = post(client, "/settings/sync", {"sync.unlinkable_mode": "skip", "sync.link_second_key": "nonsense"},
               "/settings/")
    assert bad.status_code == 303
    with app.app_context():
        from stocklink.services import merchant_settings
        assert merchant_settings.get("sync.link_second_key") == "smaregi_id"
