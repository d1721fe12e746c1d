"""stock history cursors: NextEngine deltas come from Smaregi's 在庫変動履歴 entries, each once

Per product and store, the last 在庫変動履歴 id forwarded to the delta channels. No rows are
created here: a product without one starts at the movements its next notification names
(stocklink.services.stock_history), so nothing from before the upgrade is forwarded again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'stock_history_cursors',
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('store_id', sa.String(length=20), nullable=False),
        sa.Column('last_change_id', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'],
                                name=op.f('fk_stock_history_cursors_product_id_products'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('product_id', 'store_id', name=op.f('pk_stock_history_cursors')),
    )


def downgrade():
    op.drop_table('stock_history_cursors')
