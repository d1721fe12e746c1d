"""The demo `make run` starts with no Smaregi configured: it must start again on its own database."""
from __future__ import annotations

from sqlalchemy import func, select

from stocklink.infra.extensions import db
from stocklink.models import Channel, Listing, Product
from stocklink.sandbox.demo import start_demo


def _counts(app) -> tuple[int, int, int, int]:
    """(channels, listings, listings whose channel is gone, products)."""
    with app.app_context():
        channel_ids = select(Channel.id)
        return (db.session.scalar(select(func.count()).select_from(Channel)),
                db.session.scalar(select(func.count()).select_from(Listing)),
                db.session.scalar(select(func.count()).select_from(Listing)
                                  .where(Listing.channel_id.not_in(channel_ids))),
                db.session.scalar(select(func.count()).select_from(Product)))


def test_the_demo_starts_a_second_time_on_the_same_database(app):
    """A second `make run` replaces the demo channels (the sandboxes start empty each time) and
    their listings go with them; found when the second start failed on the first one's listings."""
    first = start_demo(app, stocklink_url="http://127.0.0.1:9")
    first.stop()
    after_first = _counts(app)
    second = start_demo(app, stocklink_url="http://127.0.0.1:9")
    try:
        assert _counts(app) == after_first
        channels, listings, orphans, products = after_first
        assert (channels, orphans) == (3, 0) and listings > 100 and products == 57
        with app.app_context():
            urls = set(db.session.scalars(select(Channel.base_url)))
        assert all(url.startswith(second.url) for url in urls)
    finally:
        second.stop()
