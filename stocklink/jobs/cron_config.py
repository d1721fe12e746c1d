"""Periodic jobs, as data: loaded by ``flask cron`` into RQ's own cron scheduler."""
from __future__ import annotations

from rq import cron

from stocklink.infra.queues import MAINTENANCE, ORDERS
from stocklink.jobs.backfill import backfill_stock
from stocklink.jobs.catalogue import refresh_catalogue
from stocklink.jobs.inbox import sweep_inbox
from stocklink.jobs.orders import poll_due_channels, sweep_registrations
from stocklink.jobs.push import sweep_dirty
from stocklink.jobs.read_back import check_stale_sync, read_back_channels
from stocklink.services.read_back import READ_BACK_EVERY

# Every 15 s: a worker killed mid-drain or mid-push lets go within 30 s (stocklink/infra/leases.py),
# and these sweeps are what notice it when no new notification comes to.
cron.register(sweep_inbox, MAINTENANCE, interval=15, job_timeout=120, name="sweep_inbox")
cron.register(sweep_dirty, MAINTENANCE, interval=15, job_timeout=120, name="sweep_dirty")
cron.register(backfill_stock, MAINTENANCE, interval=300, job_timeout=600, name="backfill_stock")
cron.register(refresh_catalogue, MAINTENANCE, interval=3600, job_timeout=1800, name="refresh_catalogue")
# SPEC §11.10: each channel is read back on a budget (services/read_back.py), and a channel whose
# sync went quiet while work waits is warned about (services/stale_sync.py).
cron.register(read_back_channels, MAINTENANCE, interval=READ_BACK_EVERY, job_timeout=60, name="read_back_channels")
cron.register(check_stale_sync, MAINTENANCE, interval=60, job_timeout=60, name="check_stale_sync")
# Web orders (SPEC §5): each channel polled every 3 minutes (1 with its speed-up setting), checked
# every 5 s (a poll begins a few seconds early: jobs/orders.py TICK_SLACK); registrations still
# pending or failed are sent again when their retry time comes, checked every 15 s (an order of a
# batch that failed is retried by this sweep).
cron.register(poll_due_channels, ORDERS, interval=5, job_timeout=60, name="poll_due_channels")
cron.register(sweep_registrations, ORDERS, interval=15, job_timeout=60, name="sweep_registrations")
