"""Channels (one online store or marketplace account) and their listings."""
from __future__ import annotations

from stocklink.infra.extensions import db
from stocklink.models import link_counts
from stocklink.models._types import utcnow


class Channel(db.Model):
    """``state`` is ``active`` or ``stopped`` (level 9, SPEC §6). Credentials are a Fernet token
    (see :mod:`stocklink.infra.crypto`); everything else the channel needs is in ``settings``."""

    __tablename__ = "channels"

    id = db.Column(db.Integer, primary_key=True)
    kind = db.Column(db.String(20), nullable=False)
    name = db.Column(db.String(100), nullable=False, unique=True)
    enabled = db.Column(db.Boolean, nullable=False, default=True)
    base_url = db.Column(db.String(500), nullable=False)
    settings = db.Column(db.JSON, nullable=False, default=dict)
    credentials_encrypted = db.Column(db.Text)
    credentials_updated_at = db.Column(db.DateTime(timezone=True))
    state = db.Column(db.String(20), nullable=False, default="active")
    stopped_at = db.Column(db.DateTime(timezone=True))
    error_level = db.Column(db.Integer)
    range_min = db.Column(db.BigInteger, nullable=False, default=0)
    range_max = db.Column(db.BigInteger, nullable=False, default=999_999)
    poll_interval_s = db.Column(db.Integer, nullable=False, default=180)
    speed_up = db.Column(db.Boolean, nullable=False, default=False)
    order_cursor = db.Column(db.DateTime(timezone=True))
    initial_order_fetch_at = db.Column(db.DateTime(timezone=True))
    last_sync_at = db.Column(db.DateTime(timezone=True))
    last_poll_at = db.Column(db.DateTime(timezone=True))
    # The first channel whose catalogue was imported (SPEC §8): later imports link to its codes.
    is_base = db.Column(db.Boolean, nullable=False, default=False)
    catalogue_imported_at = db.Column(db.DateTime(timezone=True))
    last_read_back_at = db.Column(db.DateTime(timezone=True))
    # Differences heal themselves after this many minutes (None: the merchant reflects them).
    heal_after_minutes = db.Column(db.Integer)
    # Web orders (SPEC §5). 初期受注取得: orders placed before this moment are never deducted;
    # None until the merchant (or the first poll) sets it. The cursor is the channel's update
    # time up to which every order has been taken; each poll reads again from a little before it.
    orders_start_at = db.Column(db.DateTime(timezone=True))
    orders_cursor_at = db.Column(db.DateTime(timezone=True))
    orders_polled_at = db.Column(db.DateTime(timezone=True))
    # The statuses an order must have to be deducted; None: the platform's default conditions.
    order_statuses = db.Column(db.JSON)
    stale_alerted_at = db.Column(db.DateTime(timezone=True))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    listings = db.relationship("Listing", back_populates="channel", cascade="all, delete-orphan",
                               lazy="dynamic")


class Listing(db.Model):
    """A product as one channel knows it. ``last_confirmed_*`` is what the channel said it holds
    after our last write or read; ``fact_at`` is the database time of the fact the next push is
    based on, so an older write never overtakes a newer one (SPEC §11.5)."""

    __tablename__ = "listings"
    __table_args__ = (
        db.UniqueConstraint("channel_id", "identifier", name="uq_listings_channel_identifier"),
        # The product grid's listing filters (revision 0010): sync flag and link per channel, and the
        # few listings with a difference or a link problem, in small partial indexes.
        db.Index("ix_listings_channel_sync", "channel_id", "sync_enabled", "product_id"),
        db.Index("ix_listings_difference", "channel_id", "product_id",
                 sqlite_where=db.text("difference IS 1"), postgresql_where=db.text("difference IS true")),
        db.Index("ix_listings_link_problem", "channel_id", "link_problem", "product_id",
                 sqlite_where=db.text("link_problem IS NOT NULL"),
                 postgresql_where=db.text("link_problem IS NOT NULL")),
        # Whether a product has a listing (on a channel; with sync on), one probe (revision 0011).
        db.Index("ix_listings_product_channel", "product_id", "channel_id", "sync_enabled"),
    )

    id = db.Column(db.Integer, primary_key=True)
    channel_id = db.Column(db.Integer, db.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False)
    product_id = db.Column(db.Integer, db.ForeignKey("products.id", ondelete="SET NULL"), index=True)
    identifier = db.Column(db.String(255), nullable=False)
    sku = db.Column(db.String(255))
    title = db.Column(db.String(255))
    sync_enabled = db.Column(db.Boolean, nullable=False, default=True)
    min_stock = db.Column(db.Integer)
    max_stock = db.Column(db.Integer)
    reserve = db.Column(db.Integer, nullable=False, default=0)
    ratio_percent = db.Column(db.Integer, nullable=False, default=100)
    dirty = db.Column(db.Boolean, nullable=False, default=False, index=True)
    fact_at = db.Column(db.DateTime(timezone=True))
    last_pushed_quantity = db.Column(db.BigInteger)
    last_pushed_at = db.Column(db.DateTime(timezone=True))
    last_confirmed_quantity = db.Column(db.BigInteger)
    last_confirmed_at = db.Column(db.DateTime(timezone=True))
    pending_ref = db.Column(db.String(100))
    # Delta channels (NextEngine): increase/decrease counts not yet uploaded (SPEC §3).
    pending_delta = db.Column(db.BigInteger, nullable=False, default=0)
    link_problem = db.Column(db.String(50))
    channel_attributes = db.Column(db.JSON, nullable=False, default=dict)
    difference = db.Column(db.Boolean, nullable=False, default=False)
    difference_since = db.Column(db.DateTime(timezone=True))
    # The listing's code(s) and title folded by domain.text.search_key (the link screen's search).
    search_text = db.Column(db.Text, nullable=False, default="")
    # Set when the channel's catalogue no longer has it (never deleted on the channel, seed 002).
    removed_at = db.Column(db.DateTime(timezone=True))
    created_at = db.Column(db.DateTime(timezone=True), nullable=False, default=utcnow)

    channel = db.relationship("Channel", back_populates="listings")
    product = db.relationship("Product", backref=db.backref("listings", lazy="dynamic"))


link_counts.listen(Listing.__table__)
