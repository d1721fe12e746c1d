"""product grid: indexes for its listing filters

The grid of seed 004 filters products by their listings: sync flag and link on one channel,
difference products, link problems (and counts the link problems above the grid). One index
on (channel, sync flag, product) answers the first two from the index alone; the few listings
with a difference or a link problem get partial indexes, small however large the catalogue.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 19:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.create_index('ix_listings_channel_sync', ['channel_id', 'sync_enabled', 'product_id'], unique=False)
        batch_op.create_index('ix_listings_difference', ['channel_id', 'product_id'], unique=False,
                              sqlite_where=sa.text('difference IS 1'),
                              postgresql_where=sa.text('difference IS true'))
        batch_op.create_index('ix_listings_link_problem', ['channel_id', 'link_problem', 'product_id'], unique=False,
                              sqlite_where=sa.text('link_problem IS NOT NULL'),
                              postgresql_where=sa.text('link_problem IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_index('ix_listings_link_problem')
        batch_op.drop_index('ix_listings_difference')
        batch_op.drop_index('ix_listings_channel_sync')
