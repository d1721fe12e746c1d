"""Products: the catalogue as Smaregi and the channels know it, 100 rows a page."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from sqlalchemy import func, or_, select

from stocklink.infra.extensions import db
from stocklink.models import Listing, Product, StockLedger
from stocklink.web.fragments import page_or_fragment
from stocklink.web.params import page_arg

bp = Blueprint("products", __name__, url_prefix="/products")
PAGE_SIZE = 100


@bp.get("/")
def index():
    """One URL for the page and, for an htmx swap, its ``_rows.html`` fragment
    (:func:`~stocklink.web.fragments.page_or_fragment`: the Back button gets the page).

    :raise 400: ``?page=`` is not a page number.
    """
    keyword = request.args.get("q", "").strip()
    page = page_arg()
    stmt = select(Product)
    for word in [w.strip() for w in keyword.replace("、", ",").split(",") if w.strip()]:
        like = f"%{word}%"
        stmt = stmt.where(or_(Product.name.ilike(like), Product.product_code.ilike(like),
                              Product.smaregi_product_id.ilike(like)))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    products = db.session.scalars(
        stmt.order_by(Product.id).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
    listings = {}
    if products:
        for listing in db.session.scalars(select(Listing).where(
                Listing.product_id.in_([p.id for p in products]))):
            listings.setdefault(listing.product_id, []).append(listing)
    context = dict(products=products, listings=listings, total=total, page=page, keyword=keyword,
                   pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1))
    return page_or_fragment("products/index.html", "products/_rows.html", **context)


@bp.get("/<int:product_id>")
def show(product_id: int):
    """:raise 404: no such product."""
    product = db.session.get(Product, product_id) or abort(404)
    history = db.session.scalars(select(StockLedger).where(StockLedger.product_id == product.id)
                                 .order_by(StockLedger.id.desc()).limit(200)).all()
    return render_template("products/show.html", product=product, history=history,
                           listings=product.listings.all())
