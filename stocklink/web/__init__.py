"""The web layer: one blueprint per screen, thin (parse, call, render)."""
from __future__ import annotations


def register_blueprints(app) -> None:
    from stocklink.web import (
        auth,
        confirmations,
        dashboard,
        errors,
        exclusions,
        health,
        i18n,
        outbox,
        products,
        settings,
        webhooks,
    )

    for module in (auth, confirmations, dashboard, errors, exclusions, health, i18n, outbox, products,
                   settings, webhooks):
        app.register_blueprint(module.bp)
