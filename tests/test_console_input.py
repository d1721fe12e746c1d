"""Ids and page numbers the console cannot use are answered 404 / 400, never 500.

SQLite cannot bind an int above 2**63 - 1 and PostgreSQL's INTEGER stops at 2**31 - 1; both
used to reach the database from a URL, a ``?page=`` or a form's ``ids``.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, ConfirmationItem, Exclusion, Product

BAD_IDS = ["99999999999999999999", "9223372036854775808", "2147483648", "0", "-1", "abc", "1.5",
           "%D9%A1%D9%A2", "%C2%B2", "%EF%BC%91", "9" * 5000]
ID_PAGES = ["/products/{}", "/outbox/{}", "/settings/channels/{}"]
ID_POSTS = ["/errors/{}/delete", "/settings/channels/{}/test"]


@pytest.fixture
def no_propagation(app):
    """Answer exceptions as production does (500) instead of raising them into the test."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("path", ID_PAGES)
def test_impossible_id_in_a_url_is_404(no_propagation, client, logged_in, path, value):
    """An id outside 1..2**31-1, or not ASCII digits, is no such page."""
    response = client.get(path.format(value))
    assert response.status_code == 404
    assert "ページが見つかりません" in response.get_data(as_text=True)


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("path", ID_POSTS)
def test_impossible_id_in_a_post_url_is_404(no_propagation, client, logged_in, path, value):
    """The same for the POST routes that take an id."""
    response = client.post(path.format(value), data={"csrf_token": logged_in.token()})
    assert response.status_code == 404


def test_largest_id_is_still_looked_up(app, client, logged_in):
    """The bound is the column's range: 2**31-1 is a valid id (here: a product that exists)."""
    with app.app_context():
        db.session.add(Product(id=2**31 - 1, name="最後の商品"))
        db.session.commit()
    response = client.get(f"/products/{2**31 - 1}")
    assert response.status_code == 200
    assert "最後の商品" in response.get_data(as_text=True)


def test_channel_zero_is_not_the_new_channel_form(client, logged_in):
    """/settings/channels/0 used to show the empty "new channel" form."""
    assert client.get("/settings/channels/0").status_code == 404
    assert client.get("/settings/channels/new").status_code == 200


@pytest.mark.parametrize("value", ["99999999999999999999", "2147483648", "0", "-1", "abc", "1.5", "١٢", "²",
                                   "9" * 5000])
def test_impossible_page_number_is_named_and_page_1_shown(no_propagation, client, logged_in, value):
    """?page= must be a whole number from 1 to 2**31-1; the grid says so and shows page 1 (seed 004's
    filters: a bad value in the query string never costs the merchant the grid)."""
    response = client.get("/products/", query_string={"page": value})
    assert response.status_code == 200
    assert "ページ番号は1から2147483647までの整数" in response.get_data(as_text=True)


@pytest.mark.parametrize("query", [{}, {"page": ""}, {"page": "1"}, {"page": "3"}, {"page": "2147483647"}])
def test_possible_page_numbers_render(no_propagation, client, logged_in, query):
    """Absent or blank is page 1; a page past the last is an empty page, not an error."""
    response = client.get("/products/", query_string=query)
    assert response.status_code == 200


def test_page_number_selects_the_rows(app, client, logged_in):
    """Page 2 shows the 101st product and not the first."""
    with app.app_context():
        db.session.add_all([Product(name=f"商品{i:03d}") for i in range(1, 102)])
        db.session.commit()
    html = client.get("/products/?page=2").get_data(as_text=True)
    assert "商品101" in html and "商品001" not in html


@pytest.mark.parametrize("path", ["/confirmations/release", "/confirmations/exclude", "/exclusions/remove"])
def test_impossible_ids_in_a_form_match_no_row(no_propagation, client, logged_in, path):
    """Ticked ids that cannot be an id are dropped like the id of a deleted row."""
    response = client.post(path, data={"csrf_token": logged_in.token(),
                                       "ids": ["99999999999999999999", "²", "١٢٣", "-1", "9" * 5000]})
    assert response.status_code == 303


def test_good_ids_beside_impossible_ones_are_still_applied(app, client, logged_in):
    """Dropping an impossible id loses nothing else: the real one is removed from the exclusions."""
    with app.app_context():
        db.session.add_all([Exclusion(smaregi_product_id="8000001"), Exclusion(smaregi_product_id="8000002")])
        db.session.commit()
        kept, removed = db.session.scalars(select(Exclusion).order_by(Exclusion.id)).all()
        kept_id, removed_id = kept.id, removed.id
    response = client.post("/exclusions/remove", data={
        "csrf_token": logged_in.token(), "ids": ["99999999999999999999", str(removed_id), "²"]})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalars(select(Exclusion.id)).all() == [kept_id]


def test_no_selection_left_is_the_select_message(app, client, logged_in):
    """Only impossible ids is the same as none ticked: the operator is asked to select one."""
    with app.app_context():
        db.session.add(ConfirmationItem(smaregi_product_id="8000003", reason="no_code"))
        db.session.commit()
    client.post("/confirmations/exclude", data={"csrf_token": logged_in.token(), "ids": ["99999999999999999999"]})
    html = client.get("/confirmations/").get_data(as_text=True)
    assert "商品を1つ以上選択してください。" in html
    with app.app_context():
        assert db.session.scalar(select(Exclusion)) is None


@pytest.mark.parametrize("value", ["²", "99999999999999999999", "9" * 5000])
def test_impossible_number_in_the_channel_form_is_refused_by_name(no_propagation, app, client, logged_in, value):
    """A channel's range typed as "²" was a 500 (isdigit() is true, int() refuses it); now it is
    refused naming the field, and nothing is saved."""
    response = client.post("/settings/channels/new", data={
        "csrf_token": logged_in.token("/settings/channels/new"), "kind": "colorme", "name": "カラーミー",
        "range_max": value, "cred_access_token": "tok"})
    assert response.status_code == 400
    assert "range_max" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Channel)) is None


def test_full_width_digits_still_count_in_the_channel_form(app, client, logged_in):
    """A Japanese input method's １２３ is still a number there (it was before)."""
    response = client.post("/settings/channels/new", data={
        "csrf_token": logged_in.token("/settings/channels/new"), "kind": "colorme", "name": "カラーミー",
        "range_max": "１２３", "cred_access_token": "tok"})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Channel.range_max)) == 123
