"""Catalogue imports as jobs, each with a progress row keyed by its RQ job id (Contact.app's
archive widget, microblog's task rows): the console shows the row, which outlives Redis.

One import per catalogue at a time: :func:`start_import` hands back the one already waiting or
running, and the job itself holds a lease (:mod:`stocklink.infra.leases`), so a worker killed
mid-import frees the catalogue within seconds; its row is then shown as interrupted and the
import can simply be run again (it is an upsert, see :mod:`stocklink.services.catalogue_import`).
"""
from __future__ import annotations

import uuid

from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from sqlalchemy import select, update

from stocklink.infra.after_commit import after_commit
from stocklink.infra.extensions import db
from stocklink.infra.leases import lease
from stocklink.infra.queues import MAINTENANCE, get_queue, get_redis
from stocklink.jobs import job
from stocklink.jobs.push import enqueue_push
from stocklink.models import CatalogueImport, Channel, Listing
from stocklink.models._types import utcnow
from stocklink.platforms.base import AuthError, PlatformError
from stocklink.services import catalogue_import
from stocklink.services.channel_clients import make_channel_client, platform_of
from stocklink.services.smaregi_stock import smaregi_client

LOCK_KEY = "stocklink:catalogue-import:{}"
JOB_TIMEOUT = 3600
# Background reads take this share of a channel's documented request rate; pushes keep the rest.
READ_SHARE = 0.5
ACTIVE = ("queued", "running")
# Imports run in the requesting process itself (no RQ job): the command line, the hourly refresh.
IN_PROCESS = ("cli", "schedule")


def _catalogue_key(source: str, channel_id: int | None) -> str:
    return "smaregi" if source == "smaregi" else f"channel-{channel_id}"


def latest(source: str, channel_id: int | None = None) -> CatalogueImport | None:
    """The newest import of this catalogue, its state brought up to date (:func:`settle`)."""
    row = db.session.scalars(select(CatalogueImport).where(
        CatalogueImport.source == source, CatalogueImport.channel_id == channel_id)
        .order_by(CatalogueImport.created_at.desc()).limit(1)).first()
    return settle(row) if row is not None else None


def settle(row: CatalogueImport) -> CatalogueImport:
    """A row left queued or running by a job that no longer exists (Redis lost it, or its worker was
    killed and its lease ran out) is marked failed, so the merchant sees it and runs it again."""
    if row.state not in ACTIVE:
        return row
    if get_redis().exists(LOCK_KEY.format(_catalogue_key(row.source, row.channel_id))):
        return row
    try:
        status = Job.fetch(row.job_id, connection=get_redis()).get_status()
    except NoSuchJobError:
        status = None
    if status in ("queued", "scheduled", "deferred") or (status == "started" and row.state == "queued"):
        return row
    if status is None and row.requested_by in IN_PROCESS and row.state == "queued":
        return row
    row.state, row.message, row.finished_at = "failed", "interrupted", utcnow()
    db.session.commit()
    return row


def start_import(source: str, channel: Channel | None = None, *, requested_by: str | None = None,
                 enqueue: bool = True) -> tuple[CatalogueImport, bool]:
    """Ask for an import of Smaregi's catalogue (``source="smaregi"``) or of ``channel``'s.
    Returns (the import, whether it is new); an import already waiting or running is returned
    instead of starting a second. With ``enqueue`` false the caller runs :func:`import_catalogue` itself."""
    channel_id = channel.id if channel is not None else None
    current = latest(source, channel_id)
    if current is not None and current.state in ACTIVE:
        return current, False
    row = CatalogueImport(job_id=f"import-{uuid.uuid4().hex}", source=source, channel_id=channel_id,
                          state="queued", requested_by=requested_by)
    db.session.add(row)
    if enqueue:
        after_commit(lambda: get_queue(MAINTENANCE).enqueue(
            import_catalogue, row.job_id, job_id=row.job_id, job_timeout=JOB_TIMEOUT, result_ttl=86400,
            failure_ttl=7 * 86400))
    db.session.commit()
    return row, True


def _progress(row: CatalogueImport):
    def report(counts: catalogue_import.ImportCounts) -> None:
        for name in ("done", "total", "created", "updated", "removed", "linked", "problems"):
            setattr(row, name, getattr(counts, name))
        # Each chunk commits with its progress: short write transactions (SQLite has one
        # writer, and the webhooks must not wait for a 100,000-item import).
        db.session.commit()
    return report


@job
def import_catalogue(job_id: str) -> str:
    """Run the import recorded as ``job_id`` (safe to run twice: the second finds it done)."""
    row = db.session.get(CatalogueImport, job_id)
    if row is None:
        return "no such import"
    if row.state not in ACTIVE:
        return f"already {row.state}"
    key = LOCK_KEY.format(_catalogue_key(row.source, row.channel_id))
    with lease(get_redis(), key, name=f"catalogue import {job_id}") as held:
        if held:
            return _run(row)
    row.state, row.message, row.finished_at = "failed", "another import of this catalogue is running", utcnow()
    db.session.commit()
    return row.message


def _run(row: CatalogueImport) -> str:
    row.state, row.started_at, row.message = "running", utcnow(), None
    db.session.commit()
    try:
        if row.source == "smaregi":
            counts = catalogue_import.import_smaregi(smaregi_client(), _progress(row))
        else:
            channel = db.session.get(Channel, row.channel_id)
            if channel is None:
                raise PlatformError("the channel was deleted")
            pace = 1.0 / (platform_of(channel).rate_per_s * READ_SHARE)
            counts = catalogue_import.import_channel(channel, make_channel_client(channel), _progress(row),
                                                     pace_s=pace)
    except Exception as exc:
        db.session.rollback()
        if isinstance(exc, AuthError):
            reason = f"credentials refused: {exc}"
        elif isinstance(exc, PlatformError):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        db.session.execute(update(CatalogueImport).where(CatalogueImport.job_id == row.job_id)
                           .values(state="failed", message=reason[:2000], finished_at=utcnow()))
        db.session.commit()
        raise
    row.state, row.finished_at = "done", utcnow()
    db.session.commit()
    catalogue_import.after_import(counts)
    for channel_id in sorted(counts.dirty_channels):
        enqueue_push(channel_id)
    return f"{counts.done} read, {counts.created} new, {counts.updated} updated, {counts.removed} removed, " \
           f"{counts.linked} linked, {counts.problems} with a problem"


def run_now(source: str, channel: Channel | None = None) -> CatalogueImport:
    """Run an import in this process and wait for it (the command line: a hosting provider
    provisions without a worker). Raises what the import raised; the row says why."""
    row, new = start_import(source, channel, requested_by="cli", enqueue=False)
    if not new:
        raise RuntimeError(f"an import of this catalogue is already {row.state} ({row.job_id})")
    import_catalogue(row.job_id)
    db.session.refresh(row)
    return row


def enqueue_verify(listing_id: int) -> None:
    get_queue(MAINTENANCE).enqueue(verify_link, listing_id, job_timeout=120, result_ttl=0,
                                   failure_ttl=7 * 86400, retry=Retry(max=3, interval=[5, 30, 120]))


@job
def verify_link(listing_id: int) -> str:
    """Read a newly linked item back from its channel: its stock becomes the channel's confirmed
    figure, and an item the channel does not know is marked ``unknown_item`` (never pushed)."""
    listing = db.session.get(Listing, listing_id)
    if listing is None or listing.product_id is None:
        return "not linked"
    client = make_channel_client(listing.channel)
    stock = client.read_stock([listing.identifier]).get(listing.identifier)
    if stock is None:
        listing.link_problem = "unknown_item"
    else:
        if not listing.dirty and not listing.pending_ref:
            listing.last_confirmed_quantity, listing.last_confirmed_at = stock, utcnow()
        if listing.link_problem == "unknown_item":
            listing.link_problem = None
    db.session.commit()
    return f"{listing.identifier}: {'unknown on the channel' if stock is None else stock}"
