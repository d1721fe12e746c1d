"""Recording and clearing errors, and the channel state they drive (SPEC §6).

Level 9 stops a channel; it resumes only when new credentials have been saved **and** the
error has been cleared, and then everything dirty for it is pushed. Level 8 errors are
retried by RQ and shown until they clear.
"""
from __future__ import annotations

from rq import get_current_job
from sqlalchemy import select

from stocklink.infra.extensions import db
from stocklink.models import Channel, ErrorRecord
from stocklink.models._types import as_utc, utcnow


def record_error(*, source: str, level: int, kind: str, key: str, params: dict | None = None, detail: str = "",
                 code: str | None = None, channel: Channel | None = None) -> ErrorRecord:
    """Add an error, or count one more occurrence of the same unresolved error.

    ``key`` names the sentence the merchant reads and ``params`` fills it in (both rendered in
    the merchant's language when shown, :mod:`stocklink.services.merchant_text`); ``detail`` is
    the platform's or the exception's own words, shown apart. The same error is the same source,
    kind, channel, key, parameters and detail."""
    params = dict(params or {})
    detail = detail or ""
    candidates = db.session.scalars(select(ErrorRecord).where(
        ErrorRecord.resolved_at.is_(None), ErrorRecord.source == source, ErrorRecord.kind == kind,
        ErrorRecord.channel_id == (channel.id if channel else None), ErrorRecord.message_key == key,
        ErrorRecord.message == detail)).all()
    # The parameters are compared here, not in SQL: PostgreSQL's json type has no equality.
    existing = next((r for r in candidates if (r.message_params or {}) == params), None)
    now = utcnow()
    if existing is not None:
        existing.occurrences += 1
        existing.last_seen_at = now
        return existing
    record = ErrorRecord(source=source, level=level, kind=kind, message=detail, message_key=key,
                         message_params=params, code=code, occurrences=1,
                         channel_id=channel.id if channel else None, created_at=now, last_seen_at=now)
    db.session.add(record)
    if channel is not None and level >= 9:
        channel.state = "stopped"
        channel.stopped_at = now
        channel.error_level = 9
    elif channel is not None and channel.state != "stopped":
        channel.error_level = max(channel.error_level or 0, level)
    return record


def resolve_temporary_errors(channel: Channel | None = None, *, source: str = "smaregi") -> None:
    """A successful sync clears the temporary errors it proves over: the channel's or, without a
    channel, those of ``source``. Outcomes for the merchant (``unknown_item``, a rejected upload)
    stay until the merchant acts (SPEC §11.8); so do level 9 errors."""
    now = utcnow()
    owner = (ErrorRecord.channel_id == channel.id if channel is not None
             else (ErrorRecord.channel_id.is_(None) & (ErrorRecord.source == source)))
    for record in db.session.scalars(select(ErrorRecord).where(
            owner, ErrorRecord.kind == "temporary", ErrorRecord.level < 9, ErrorRecord.resolved_at.is_(None))):
        record.resolved_at = now
    if channel is not None and channel.state == "active":
        channel.error_level = None


def clear_error(record: ErrorRecord, *, commit: bool = True) -> int | None:
    """The merchant deletes an error; a stopped channel may now resume. Returns the id of the
    channel that resumed, if one did (the caller enqueues its push after the commit)."""
    channel = record.channel
    db.session.delete(record)
    db.session.flush()
    resumed = channel is not None and maybe_resume(channel)
    if commit:
        db.session.commit()
    return channel.id if resumed else None


def maybe_resume(channel: Channel) -> bool:
    """Resume a stopped channel when its credentials are newer than the stop and no level 9
    error is left. Returns whether it resumed: the caller then enqueues the push of everything
    dirty once it has committed."""
    if channel.state != "stopped":
        return False
    open_auth = db.session.scalars(select(ErrorRecord).where(
        ErrorRecord.channel_id == channel.id, ErrorRecord.level >= 9)).first()
    fresh = (channel.credentials_updated_at is not None and channel.stopped_at is not None
             and as_utc(channel.credentials_updated_at) > as_utc(channel.stopped_at))
    if open_auth is not None or not fresh:
        return False
    channel.state = "active"
    channel.error_level = None
    channel.stopped_at = None
    db.session.flush()
    return True


def final_attempt() -> bool:
    """Whether the running RQ job has no retry left (alert on the final failure only)."""
    job = get_current_job()
    return job is None or not job.retries_left
