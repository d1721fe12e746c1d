"""stocklink: keeps online stores' stock in step with the Smaregi POS."""
from __future__ import annotations

import os

from dotenv import load_dotenv
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: configuration, then one ``init_app`` per subsystem."""
    load_dotenv(os.path.join(os.getcwd(), ".env"))
    app = Flask(__name__, instance_path=os.environ.get("STOCKLINK_INSTANCE_PATH") or None,
                template_folder="../templates", static_folder="../static")
    os.makedirs(app.instance_path, exist_ok=True)
    from stocklink import config
    app.config.from_mapping(config.from_environment(app.instance_path))
    if test_config:
        app.config.update(test_config)
    trust_proxies(app)

    # Imported here, not at the top: importing any stocklink module runs this file first, and the
    # domain, a platform client or the sandbox must load without pulling in the whole app.
    from stocklink import cli
    from stocklink.infra import i18n, security
    from stocklink.infra.extensions import csrf, db, htmx, mail, migrate
    from stocklink.jobs import mail as mail_jobs
    from stocklink.web import access, register_blueprints

    db.init_app(app)
    with app.app_context():
        from stocklink.infra.extensions import sqlite_pragmas
        sqlite_pragmas(db.engine)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    mail.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    i18n.init_app(app)
    access.init_app(app)
    security.init_app(app)
    register_blueprints(app)
    cli.init_app(app)
    mail_jobs.init_app(app)
    return app


def trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` proxies, ``request.remote_addr`` is the browser's address (what
    the login throttle counts by) and ``request.scheme`` the browser's, read from the headers
    those proxies set. Only X-Forwarded-For and -Proto: the host comes from the Host header, or
    ``STOCKLINK_PUBLIC_URL``, so a forged X-Forwarded-Host changes nothing."""
    count = app.config.get("TRUSTED_PROXIES") or 0
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=0, x_port=0, x_prefix=0)
