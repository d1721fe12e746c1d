"""Alembic: one head, and a clean upgrade from empty gives exactly the models' schema."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy import delete, func, inspect, select, text

from stocklink.infra.extensions import db


def test_one_head(app):
    """Two heads would mean two branches of the schema."""
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_upgrade_from_empty_matches_models(app):
    """Upgrading an empty database creates every table with nothing left to autogenerate."""
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert set(db.metadata.tables) <= tables
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, db.metadata)
        assert diff == []


def test_sqlite_enforces_foreign_keys_and_0003_settles_old_orphans(tmp_path, redis_server):
    """On a SQLite file (whatever DATABASE_URL the suite runs on): rows left behind while SQLite
    did not enforce foreign keys are settled by 0003 as ON DELETE says, and from then on a
    deleted channel takes its listings with it, as on PostgreSQL."""
    from stocklink import create_app
    from stocklink.models import Channel, Listing, Product

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}", "REDIS_URL": redis_server,
                      "SECRET_KEY": "test"})
    with app.app_context():
        upgrade(revision="0002")
        # What an old stocklink left: parents deleted, children kept (foreign keys were off).
        db.session.execute(text("PRAGMA foreign_keys=OFF"))
        # Plain SQL with the columns revision 0002 had: the models describe the newest schema.
        now = "'2026-01-01 00:00:00'"
        for statement in (
                "INSERT INTO products (id, name, is_set, stock_managed, smaregi_stock, reserved, created_at,"
                f" updated_at) VALUES (1, 'マグカップ', 0, 1, 0, 0, {now}, {now})",
                "INSERT INTO channels (id, kind, name, enabled, base_url, settings, state, range_min, range_max,"
                f" poll_interval_s, speed_up, created_at) VALUES (7, 'colorme', 'ColorMe', 1, 'http://x', '{{}}',"
                f" 'active', 0, 999999, 180, 0, {now})",
                *(f"INSERT INTO listings (id, channel_id, product_id, identifier, sync_enabled, reserve, ratio_percent,"
                  f" dirty, pending_delta, channel_attributes, difference, created_at)"
                  f" VALUES ({lid}, {cid}, {pid}, 'i{lid}', 1, 0, 100, 0, 0, '{{}}', 0, {now})"
                  for lid, cid, pid in ((1, 7, 1), (2, 3, 1), (3, 7, 42))),
                f"INSERT INTO orders (id, channel_id, channel_order_id, revision, status, fetched_at)"
                f" VALUES (1, 3, 'gone', 1, 'new', {now})",  # its channel is gone
                f"INSERT INTO orders (id, channel_id, channel_order_id, revision, status, fetched_at)"
                f" VALUES (2, 7, 'kept', 1, 'new', {now})",
                *(f"INSERT INTO order_lines (id, order_id, line_no, listing_identifier, quantity, reserved)"
                  f" VALUES ({i}, {i}, 1, 'i{i}', 1, 0)" for i in (1, 2))):
            db.session.execute(text(statement))
        db.session.commit()
        db.session.execute(text("PRAGMA foreign_keys=ON"))
        db.session.commit()
        upgrade(revision="0012")
        # An order whose channel is gone goes, and its lines with it, in the same upgrade.
        assert db.session.scalars(select(text("id")).select_from(text("orders"))).all() == [2]
        assert db.session.scalars(select(text("id")).select_from(text("order_lines"))).all() == [2]
        # 0013 replaces the order tables no stocklink wrote, and refuses to drop rows found there.
        with pytest.raises(SystemExit):  # flask_migrate logs the reason and exits
            upgrade()
        db.session.rollback()
        db.session.execute(text("DELETE FROM order_lines"))
        db.session.execute(text("DELETE FROM orders"))
        db.session.commit()
        upgrade()
        rows = db.session.execute(select(Listing.id, Listing.channel_id, Listing.product_id)
                                  .order_by(Listing.id)).all()
        assert [tuple(r) for r in rows] == [(1, 7, 1), (3, 7, None)]  # 2: channel gone; 3: product gone
        # 0009 gives old rows their search text: the grid's keyword finds them by name and listing code.
        assert db.session.scalar(select(Product.search_text).where(Product.id == 1)) == "マグカップ i1"
        assert db.session.scalar(select(Listing.search_text).where(Listing.id == 1)) == "i1"
        # 0012 counts each product's linked listings; from then on the triggers keep the count.
        assert db.session.scalar(select(Product.linked_listings).where(Product.id == 1)) == 1
        db.session.execute(delete(Channel))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Listing)) == 0
        assert db.session.scalar(select(func.count()).select_from(Product)) == 1
        assert db.session.scalar(select(Product.linked_listings)) == 0  # the cascade's deletes counted
        db.session.remove()
        db.engine.dispose()


def test_0008_down_and_up_keeps_every_error_readable(app):
    """Downgrading past 0008 leaves a keyed error its key in ``message`` (an older stocklink shows
    ``message`` alone); upgrading again brings the columns back, old rows keyless."""
    from flask_migrate import downgrade
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO errors (source, level, kind, message, message_key, message_params, "
                              "occurrences, created_at, last_seen_at) VALUES ('smaregi', 8, 'temporary', "
                              "'HTTP 500', 'smaregi_unavailable', '{}', 1, :now, :now), ('smaregi', 8, "
                              "'temporary', '', 'smaregi_auth', '{}', 1, :now, :now)"), {"now": "2026-12-01 00:00:00"})
        downgrade(revision="0007")
        assert "message_key" not in {c["name"] for c in inspect(db.engine).get_columns("errors")}
        with db.engine.connect() as conn:
            messages = conn.execute(text("SELECT message FROM errors ORDER BY id")).scalars().all()
        assert messages == ["smaregi_unavailable: HTTP 500", "smaregi_auth"]
        upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT message_key, message FROM errors ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(None, "smaregi_unavailable: HTTP 500"), (None, "smaregi_auth")]
