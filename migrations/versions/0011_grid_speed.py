"""grid speed: one index for the grid's "has a listing" filters

The grid's linked, unlinked and sync-on filters ask, for each product of a page, whether it has a
listing (on the chosen channel; with sync on). On (product, channel, sync flag) that is one index
probe whether or not a channel is chosen; without it SQLite answered "unlinked on one channel" by
reading the channel's whole listing index once per product (bench/grid.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:45:00

"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index('ix_listings_product_channel', ['product_id', 'channel_id', 'sync_enabled'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_product_channel')
