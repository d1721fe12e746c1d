"""grid speed: linked listings per product (a count kept by triggers) and, on PostgreSQL,
statistics on total stock

``products.linked_listings`` counts the listings linked to each product; triggers on listings
keep it (stocklink.models.link_counts). The grid's "linked" and "unlinked" filters then read
the product row instead of every listing: on PostgreSQL at 100,000 products they took 124 and
154 ms a page, most of it two passes over 400,000 listings (bench/grid.py). The column is
backfilled from the listings there are.

PostgreSQL plans ``smaregi_stock - reserved`` (total stock, the grid's 総在庫数 range) with a
default guess of 0.5 % of rows; with a keyword it then sorted every match instead of walking the
primary key to the first 100 (25 ms against 0.5 ms at 100,000 products). Statistics on the
expression (PostgreSQL 14+) give it the real distribution.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 22:50:00

"""
from alembic import op
import sqlalchemy as sa

from stocklink.models import link_counts
from stocklink.models.catalogue import TOTAL_STATISTICS


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('linked_listings', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index('ix_products_unlinked', ['id'], unique=False,
                              sqlite_where=sa.text('linked_listings = 0'),
                              postgresql_where=sa.text('linked_listings = 0'))
    connection = op.get_bind()
    link_counts.install(connection)
    connection.exec_driver_sql(link_counts.RECOUNT)
    if connection.dialect.name == 'postgresql':
        connection.exec_driver_sql(TOTAL_STATISTICS)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.get_bind().exec_driver_sql('DROP STATISTICS IF EXISTS products_total_stock')
    link_counts.uninstall(op.get_bind())
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index('ix_products_unlinked')
        batch_op.drop_column('linked_listings')
