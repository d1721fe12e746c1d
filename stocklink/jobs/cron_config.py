"""Periodic jobs, as data: loaded by ``flask cron`` into RQ's own cron scheduler."""
from __future__ import annotations

from rq import cron

from stocklink.jobs.backfill import backfill_stock
from stocklink.jobs.catalogue import refresh_catalogue
from stocklink.jobs.inbox import sweep_inbox
from stocklink.jobs.push import sweep_dirty
from stocklink.queues import MAINTENANCE

cron.register(sweep_inbox, MAINTENANCE, interval=60, job_timeout=120, name="sweep_inbox")
cron.register(sweep_dirty, MAINTENANCE, interval=60, job_timeout=120, name="sweep_dirty")
cron.register(backfill_stock, MAINTENANCE, interval=300, job_timeout=600, name="backfill_stock")
cron.register(refresh_catalogue, MAINTENANCE, interval=3600, job_timeout=1800, name="refresh_catalogue")
