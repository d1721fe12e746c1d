"""After a large import the database's statistics are refreshed (PostgreSQL: VACUUM ANALYZE), so
the grid opened right after it is planned for the rows it now holds; a small change, and SQLite,
are left to the database's own pace."""
from __future__ import annotations

from sqlalchemy import text

from stocklink.infra import db_maintenance
from stocklink.infra.extensions import db
from stocklink.services.catalogue_import import ImportCounts, after_import

pytest_plugins = ["tests.fixtures_platforms"]


def _vacuums(table: str) -> int | None:
    """Manual VACUUMs PostgreSQL counted on ``table`` (None on SQLite)."""
    if db.engine.dialect.name != "postgresql":
        return None
    with db.engine.connect() as conn:
        return conn.scalar(text("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = :t"), {"t": table})


def _sqlite_statistics() -> bool:
    return bool(db.session.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")))


def test_only_a_bulk_change_on_postgresql_refreshes_statistics(app):
    with app.app_context():
        postgresql = db.engine.dialect.name == "postgresql"
        assert after_import(ImportCounts(created=db_maintenance.BULK_ROWS - 1)) is False
        assert _vacuums("listings") in (None, 0)
        ran = after_import(ImportCounts(created=600, linked=db_maintenance.BULK_ROWS - 600))
        assert ran is postgresql
        if postgresql:
            assert _vacuums("listings") == 1 and _vacuums("products") == 1
        else:
            assert not _sqlite_statistics()  # no ANALYZE on SQLite: its plans stay as measured


def test_names_not_of_our_tables_are_never_sent(app):
    with app.app_context():
        assert db_maintenance.after_bulk_change(["listings; DROP TABLE products"], 10_000) is False
        assert db.session.scalar(text("SELECT count(*) FROM products")) == 0


def test_the_import_job_refreshes_statistics_after_a_large_import(app, smaregi_sample, smaregi, runner, monkeypatch):
    """The threshold lowered to the sample's size: the import job itself runs the refresh once done."""
    monkeypatch.setattr(db_maintenance, "BULK_ROWS", 5)
    result = runner.invoke(args=["catalogue", "import", "smaregi"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            assert _vacuums("products") == 1
        else:
            assert not _sqlite_statistics()
