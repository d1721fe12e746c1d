"""Keeping what stocklink knows of Smaregi's products current (new products, codes, names, stock
control, removals).

Seed 003: a product switched to 在庫管理対象外 (``stockControlDivision = 1``) must stop syncing;
notifications carry no product data, so the catalogue is re-read every hour — as the full Smaregi
import (:mod:`stocklink.jobs.catalogue_import`), so products added in Smaregi appear and removed
ones are marked, with the same progress row the console shows.
"""
from __future__ import annotations

from stocklink.jobs import job
from stocklink.jobs.catalogue_import import import_catalogue, start_import
from stocklink.services import merchant_settings


@job
def refresh_catalogue() -> str:
    """Run the Smaregi catalogue import now (unless one is already waiting or running)."""
    if not merchant_settings.smaregi_configured():
        return "smaregi not configured"
    row, new = start_import("smaregi", requested_by="schedule", enqueue=False)
    if not new:
        return f"an import is already {row.state}"
    return import_catalogue(row.job_id)
