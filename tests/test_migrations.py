"""Alembic: one head, and a clean upgrade from empty gives exactly the models' schema."""
from __future__ import annotations

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
    from stocklink.models import Channel, Listing, Order, OrderLine, Product

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}", "REDIS_URL": redis_server,
                      "SECRET_KEY": "test"})
    with app.app_context():
        upgrade(revision="0002")
        # What an old stocklink left: parents deleted, children kept (foreign keys were off).
        db.session.execute(text("PRAGMA foreign_keys=OFF"))
        db.session.add_all([Product(id=1, name="マグカップ"), Channel(id=7, kind="colorme", name="ColorMe",
                                                                     base_url="http://x", settings={})])
        db.session.add_all([Listing(id=1, channel_id=7, product_id=1, identifier="i1"),
                            Listing(id=2, channel_id=3, product_id=1, identifier="i2"),
                            Listing(id=3, channel_id=7, product_id=42, identifier="i3")])
        db.session.add_all([Order(id=1, channel_id=3, channel_order_id="gone"),  # its channel is gone
                            Order(id=2, channel_id=7, channel_order_id="kept")])
        db.session.add_all([OrderLine(id=1, order_id=1, line_no=1, listing_identifier="i2", quantity=1),
                            OrderLine(id=2, order_id=2, line_no=1, listing_identifier="i1", quantity=1)])
        db.session.commit()
        db.session.execute(text("PRAGMA foreign_keys=ON"))
        db.session.commit()
        upgrade()
        rows = db.session.execute(select(Listing.id, Listing.channel_id, Listing.product_id)
                                  .order_by(Listing.id)).all()
        assert [tuple(r) for r in rows] == [(1, 7, 1), (3, 7, None)]  # 2: channel gone; 3: product gone
        # An order whose channel is gone goes, and its lines with it, in the same upgrade.
        assert db.session.scalars(select(Order.id)).all() == [2]
        assert db.session.scalars(select(OrderLine.id)).all() == [2]
        db.session.execute(delete(Channel))
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Listing)) == 0
        assert db.session.scalar(select(func.count()).select_from(Product)) == 1
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
