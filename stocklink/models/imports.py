"""Catalogue imports: one row per import job, keyed by its RQ job id, holding its progress."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class CatalogueImport(db.Model):
    """``source`` is ``smaregi`` or ``channel`` (then ``channel_id``); ``state`` is ``queued``,
    ``running``, ``done`` or ``failed``. ``done`` of ``total`` items read so far (``total`` is
    None until the platform says how many there are); the counts say what the import did."""

    __tablename__ = "catalogue_imports"

    job_id = db.Column(db.String(64), primary_key=True)
    source = db.Column(db.String(20), nullable=False)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    state = db.Column(db.String(20), nullable=False, default="queued")
    done = db.Column(db.Integer, nullable=False, default=0)
    total = db.Column(db.Integer)
    created = db.Column(db.Integer, nullable=False, default=0)
    updated = db.Column(db.Integer, nullable=False, default=0)
    removed = db.Column(db.Integer, nullable=False, default=0)
    linked = db.Column(db.Integer, nullable=False, default=0)
    problems = db.Column(db.Integer, nullable=False, default=0)
    message = db.Column(db.Text)
    requested_by = db.Column(db.String(100))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    started_at = db.Column(db.DateTime(timezone=True))
    finished_at = db.Column(db.DateTime(timezone=True))

    channel = db.relationship("Channel")
