"""The Flask extensions, created unbound and bound in :func:`stocklink.create_app`."""
from __future__ import annotations

from flask_babel import Babel
from flask_login import LoginManager
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData, event
from sqlalchemy.dialects import postgresql, sqlite

# Named constraints so Alembic migrations are the same on SQLite and PostgreSQL.
naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention))
# Batch mode so later ALTERs work on SQLite as well as PostgreSQL.
migrate = Migrate(render_as_batch=True, compare_type=True)
babel = Babel()
mail = Mail()
login_manager = LoginManager()
csrf = CSRFProtect()
htmx = Htmx()


def sqlite_pragmas(engine) -> None:
    """SQLite: WAL so readers never wait for the writer, FULL sync so a notification answered
    200 survives a power loss (SPEC: durable before acknowledged), a busy timeout, and foreign
    keys enforced as PostgreSQL enforces them (SQLite's default is off: deleting a channel left
    its listings behind, and the demo's second start failed on them). Migrations switch them
    off while they run (migrations/env.py), as SQLite's table rebuilds require."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def set_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def insert_for(dialect: str):
    """The dialect's ``insert`` construct, which has ``on_conflict_do_nothing`` (PostgreSQL, SQLite)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
