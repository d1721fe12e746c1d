"""Products (Smaregi SKUs and set products) and set components."""
from __future__ import annotations

from sqlalchemy import DDL, event

from stocklink.domain.stock import total_stock
from stocklink.infra.extensions import db
from stocklink.models._types import utcnow


class Product(db.Model):
    """One stock-keeping unit. ``smaregi_stock`` is the last value read from Smaregi for the
    configured store (SPEC §3); ``reserved`` counts web-order quantities not yet registered in
    Smaregi (nothing reserves yet: web orders will). They change only in
    :mod:`stocklink.services.stock_ledger`, each change with its ledger row."""

    __tablename__ = "products"
    __table_args__ = (
        # The grid's "unlinked" filter: the few products without a listing, in a small index.
        db.Index("ix_products_unlinked", "id", sqlite_where=db.text("linked_listings = 0"),
                 postgresql_where=db.text("linked_listings = 0")),
    )

    id = db.Column(db.Integer, primary_key=True)
    smaregi_product_id = db.Column(db.String(20), unique=True)
    product_code = db.Column(db.String(64), index=True)
    name = db.Column(db.String(255), nullable=False, default="")
    variation = db.Column(db.String(255))
    group_code = db.Column(db.String(64))
    image_url = db.Column(db.String(1000))
    is_set = db.Column(db.Boolean, nullable=False, default=False)
    stock_managed = db.Column(db.Boolean, nullable=False, default=True)
    smaregi_stock = db.Column(db.BigInteger, nullable=False, default=0)
    reserved = db.Column(db.BigInteger, nullable=False, default=0)
    stock_read_at = db.Column(db.DateTime(timezone=True))
    low_stock_threshold = db.Column(db.Integer)
    # Listings linked to it, on every channel: kept by triggers on listings (models.link_counts).
    linked_listings = db.Column(db.Integer, nullable=False, default=0, server_default="0")
    # Name, variation and every code, folded by domain.text.search_key: what the grid's keyword
    # filter matches (services.search_text keeps it current).
    search_text = db.Column(db.Text, nullable=False, default="")
    # Set when Smaregi's product list no longer has it: marked, never silently deleted.
    removed_at = db.Column(db.DateTime(timezone=True))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    components = db.relationship(
        "SetComponent", foreign_keys="SetComponent.set_product_id", cascade="all, delete-orphan",
        back_populates="set_product")

    @property
    def total(self) -> int:
        """What can be sold online (:func:`~stocklink.domain.stock.total_stock`)."""
        return total_stock(self.smaregi_stock, self.reserved)


# PostgreSQL's planner guesses a range over an expression; statistics on total stock let it plan
# the grid's 総在庫数 filter from the real distribution (revision 0012; ANALYZE fills them).
TOTAL_STATISTICS = "CREATE STATISTICS IF NOT EXISTS products_total_stock ON (smaregi_stock - reserved) FROM products"
event.listen(Product.__table__, "after_create", DDL(TOTAL_STATISTICS).execute_if(dialect="postgresql"))


class SetComponent(db.Model):
    __tablename__ = "set_components"
    __table_args__ = (
        db.UniqueConstraint("set_product_id", "component_id", name="uq_set_components_pair"),
        db.CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id = db.Column(db.Integer, primary_key=True)
    set_product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    component_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="CASCADE"), nullable=False,
                             index=True)
    quantity = db.Column(db.Integer, nullable=False)

    set_product = db.relationship("Product", foreign_keys=[set_product_id], back_populates="components")
    component = db.relationship("Product", foreign_keys=[component_id])


class StockHistoryCursor(db.Model):
    """The last Smaregi 在庫変動履歴 id whose movement reached the delta channels (NextEngine), per
    product and store: entries after it are forwarded once, entries up to it never again. It
    moves in the transaction that adds the deltas (see :mod:`stocklink.services.stock_history`)."""

    __tablename__ = "stock_history_cursors"

    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    store_id = db.Column(db.String(20), primary_key=True)
    last_change_id = db.Column(db.BigInteger, nullable=False)
    updated_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
