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
    stopped_channels_banner(app)


def stopped_channels_banner(app) -> None:
    """Every console page shows a red banner while a channel is stopped (level 9, SPEC §6)."""

    @app.context_processor
    def inject_stopped():
        from flask_login import current_user
        from sqlalchemy import select

        from stocklink.extensions import db
        from stocklink.models import Channel

        # Mails are rendered in jobs, outside any request: there is no current_user then.
        if not current_user or not current_user.is_authenticated:
            return {"stopped_channels": []}
        return {"stopped_channels": db.session.scalars(
            select(Channel).where(Channel.state == "stopped").order_by(Channel.id)).all()}
