"""Sending stored notifications over SMTP (Flask-Mail)."""
from __future__ import annotations

from flask import current_app
from flask_mail import Message
from rq import Retry
from sqlalchemy import event

from stocklink.infra.after_commit import after_commit
from stocklink.infra.extensions import db, mail
from stocklink.infra.queues import MAIL, get_queue
from stocklink.jobs import job
from stocklink.models import OutboxMessage
from stocklink.models._types import utcnow


def init_app(app) -> None:
    """Every pending message stored in the outbox is sent once its transaction commits (a
    rollback sends nothing): the services that store mail need not know about queues."""
    if not event.contains(OutboxMessage, "after_insert", _send_when_committed):
        event.listen(OutboxMessage, "after_insert", _send_when_committed)


def _send_when_committed(_mapper, _connection, message: OutboxMessage) -> None:
    if message.status == "pending":
        message_id = message.id
        after_commit(lambda: enqueue_send(message_id))


def enqueue_send(message_id: int) -> None:
    get_queue(MAIL).enqueue(send_mail, message_id, job_id=f"mail-{message_id}", job_timeout=60,
                            retry=Retry(max=5, interval=[10, 60, 300, 900, 3600]), failure_ttl=7 * 86400,
                            result_ttl=0)


@job
def send_mail(message_id: int) -> str:
    """Send one outbox message; safe to run twice (a sent message is not sent again)."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status == "sent":
        return "skipped"
    recipients = [r.strip() for r in message.recipients.split(",") if r.strip()]
    msg = Message(subject=message.subject, recipients=recipients, body=message.body,
                  sender=current_app.config["MAIL_DEFAULT_SENDER"], charset="utf-8")
    for attachment in message.attachments or []:
        data = attachment["text"].encode(attachment.get("encoding", "utf-8"))
        msg.attach(attachment["filename"], attachment.get("content_type", "text/csv"), data)
    message.attempts += 1
    try:
        mail.send(msg)
    except Exception as exc:
        message.status = "failed"
        message.error = f"{type(exc).__name__}: {exc}"[:1000]
        db.session.commit()
        raise
    message.status = "sent"
    message.sent_at = utcnow()
    message.error = None
    db.session.commit()
    return "sent"
