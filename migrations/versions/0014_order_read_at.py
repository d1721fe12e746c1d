"""web orders: when stocklink last read each order from its channel

A channel that lists its order changes cheaply (Shopify: id and time, 2 points an order) has a
poll read whole only the orders changed since they were taken in. A channel gives times to the
second, so an order changed twice in one second shows the same time: it is read again while the
read that gave the revision held came too soon after that second to have seen every change of it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel_read_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('channel_read_at')
