"""Periodic jobs, as data: loaded by ``flask cron`` into RQ's own cron scheduler."""
from __future__ import annotations

from rq import cron

from stocklink.infra.queues import MAINTENANCE
from stocklink.jobs.backfill import backfill_stock
from stocklink.jobs.catalogue import refresh_catalogue
from stocklink.jobs.inbox import sweep_inbox
from stocklink.jobs.push import sweep_dirty

# Every 15 s: a worker killed mid-drain or mid-push lets go within 30 s (stocklink/infra/leases.py),
# and these sweeps are what notice it when no new notification comes to.
cron.register(sweep_inbox, MAINTENANCE, interval=15, job_timeout=120, name="sweep_inbox")
cron.register(sweep_dirty, MAINTENANCE, interval=15, job_timeout=120, name="sweep_dirty")
cron.register(backfill_stock, MAINTENANCE, interval=300, job_timeout=600, name="backfill_stock")
cron.register(refresh_catalogue, MAINTENANCE, interval=3600, job_timeout=1800, name="refresh_catalogue")
