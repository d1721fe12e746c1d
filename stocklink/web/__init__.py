"""The web layer: one blueprint per screen, thin (parse, call, render)."""
from __future__ import annotations

from flask import render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel
from stocklink.services.merchant_text import TEMPLATE_FILTERS


def register_blueprints(app) -> None:
    # Here, not at the top: each blueprint imports stocklink.web.params, and this package must
    # not import every screen whenever one of its modules is imported.
    from stocklink.web import (
        auth,
        catalogue,
        confirmations,
        dashboard,
        errors,
        exclusions,
        grid_bulk,
        grid_edits,
        health,
        language,
        links,
        orders,
        outbox,
        products,
        settings,
        webhooks,
    )
    from stocklink.web.params import install

    install(app)  # before the routes: <int:…> ids are bounded to the database's range
    for module in (auth, catalogue, confirmations, dashboard, errors, exclusions, grid_bulk, grid_edits, health,
                   language, links, orders, outbox, products, settings, webhooks):
        app.register_blueprint(module.bp)
    webhooks.redact_access_logs()  # the webhook's path carries its secret
    stopped_channels_banner(app)
    error_pages(app)
    app.jinja_env.filters.update(TEMPLATE_FILTERS)  # errors and ledger rows in the reader's language


def stopped_channels_banner(app) -> None:
    """Every console page shows a red banner while a channel is stopped (level 9, SPEC §6)."""
    @app.context_processor
    def inject_stopped():
        # Mails are rendered in jobs, outside any request: there is no current_user then.
        if not current_user or not current_user.is_authenticated:
            return {"stopped_channels": []}
        return {"stopped_channels": db.session.scalars(
            select(Channel).where(Channel.state == "stopped").order_by(Channel.id)).all()}


def error_pages(app) -> None:
    """400 and 404 as console pages in the operator's language (Werkzeug's own are English only).
    The webhook and /healthz keep their plain answers: Smaregi and monitors read those."""
    def render(exc):
        if request.blueprint in ("webhooks", "health"):
            return exc
        titles = {400: _("Bad request"), 404: _("Page not found")}
        reasons = {400: _("The request could not be understood."),
                   404: _("There is no such page, or what it showed has been deleted.")}
        reason = exc.description if exc.code == 400 and exc.description != type(exc).description else None
        return render_template("errors/http.html", title=titles[exc.code], reason=reason or reasons[exc.code]), \
            exc.code

    app.register_error_handler(400, render)
    app.register_error_handler(404, render)
