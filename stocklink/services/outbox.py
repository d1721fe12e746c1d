"""Notifications: stored in the outbox first, then sent by a job over SMTP (SPEC §7).

Each kind can be switched off and sent to its own address (Settings → Notifications);
a message of a kind that is off is still stored and shown, with status ``off``.
"""
from __future__ import annotations

from flask import render_template
from flask_babel import force_locale

from stocklink.infra.extensions import db
from stocklink.models import OutboxMessage
from stocklink.services import merchant_settings

# kind → (on/off setting, recipients setting)
KINDS = {
    "unlinkable": ("notify.unlinkable_on", "notify.unlinkable_to"),
    "level9": ("notify.errors_on", "notify.error_to"),
    "level8": ("notify.errors_on", "notify.error_to"),
    "stale": ("notify.errors_on", "notify.error_to"),  # a channel's sync went quiet (services/stale_sync)
    "report": ("notify.report_on", "notify.report_to"),
    "low_stock": ("notify.low_stock_on", "notify.low_stock_to"),
}
MAIL_LANGUAGE = "ja"  # the console's default language; a mail is the same whoever was signed in when it was queued


def queue_mail(kind: str, subject, template: str, *, attachments: list[dict] | None = None,
               **context) -> OutboxMessage:
    """Store a message rendered from ``templates/mail/<template>.txt``: ``pending`` if its kind
    is on and has recipients (``jobs/mail`` sends it once the transaction commits).

    ``subject`` may be a lazy gettext string: it is rendered, like the body, in
    :data:`MAIL_LANGUAGE`, also when the mail is queued inside a merchant's request."""
    on_key, to_key = KINDS[kind]
    recipients = merchant_settings.get(to_key) or merchant_settings.get("notify.error_to")
    with force_locale(MAIL_LANGUAGE):
        subject = str(subject)
        body = render_template(f"mail/{template}.txt", **context)
    message = OutboxMessage(kind=kind, subject=subject, body=body, recipients=recipients or "",
                            attachments=attachments or [])
    if not merchant_settings.get(on_key):
        message.status = "off"
    elif not recipients:
        message.status = "no_recipient"
    db.session.add(message)
    db.session.flush()
    return message
