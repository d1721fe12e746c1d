"""A row per background job keyed by its RQ job id, so its status outlives Redis."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class JobRun(db.Model):
    __tablename__ = "job_runs"

    id = db.Column(db.Integer, primary_key=True)
    rq_job_id = db.Column(db.String(120), nullable=False, index=True)
    name = db.Column(db.String(80), nullable=False)
    status = db.Column(db.String(20), nullable=False, default="started")  # started | finished | failed
    progress = db.Column(db.Integer, nullable=False, default=0)
    detail = db.Column(db.Text)
    started_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at = db.Column(db.DateTime(timezone=True))
