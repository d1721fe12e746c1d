"""Keeping what stocklink knows of Smaregi's products current (code, name, stock control).

Seed 003: a product switched to 在庫管理対象外 (``stockControlDivision = 1``) must stop
syncing; notifications carry no product data, so the catalogue is re-read every hour.
"""
from __future__ import annotations

from sqlalchemy import select

from stocklink.domain.text import variation_label
from stocklink.infra.extensions import db
from stocklink.jobs import job
from stocklink.models import Product
from stocklink.services import merchant_settings
from stocklink.services.smaregi_stock import smaregi_client


@job
def refresh_catalogue() -> str:
    """Update the products stocklink already has from Smaregi's product list."""
    if not merchant_settings.smaregi_configured():
        return "smaregi not configured"

    known = {p.smaregi_product_id: p for p in db.session.scalars(
        select(Product).where(Product.smaregi_product_id.is_not(None)))}
    updated = 0
    for info in smaregi_client().iter_products():
        product = known.get(info.product_id)
        if product is None:
            continue
        values = {"product_code": info.code, "name": info.name or product.name,
                  "variation": variation_label(info.color, info.size),
                  "group_code": info.group_code, "stock_managed": info.stock_managed}
        if any(getattr(product, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(product, key, value)
            updated += 1
    db.session.commit()
    return f"{updated} product(s) updated"
