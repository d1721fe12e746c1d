"""catalogue import and read-back: import progress rows, search text, removal marks, base channel

Catalogue imports run as jobs whose progress is a row keyed by the RQ job id. Products and
listings carry the folded text the grid and the link screen search, and a ``removed_at`` mark
instead of being deleted when Smaregi or the channel no longer lists them. A channel records
whether it is the base channel, when it was last imported and read back, and how long a
difference waits before it heals itself.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 22:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'catalogue_imports',
        sa.Column('job_id', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=True),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('total', sa.Integer(), nullable=True),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('removed', sa.Integer(), nullable=False),
        sa.Column('linked', sa.Integer(), nullable=False),
        sa.Column('problems', sa.Integer(), nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('requested_by', sa.String(length=100), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'],
                                name=op.f('fk_catalogue_imports_channel_id_channels'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', name=op.f('pk_catalogue_imports')),
    )
    with op.batch_alter_table('catalogue_imports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_catalogue_imports_channel_id'), ['channel_id'], unique=False)
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_text', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('difference_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('search_text', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_base', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('catalogue_imported_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_read_back_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('heal_after_minutes', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stale_alerted_at', sa.DateTime(timezone=True), nullable=True))
    _fill_search_text()


def _fill_search_text():
    """Rows from before this revision get their search text now, or the grid's keyword would
    never find them (the same folding as stocklink.services.search_text)."""
    from stocklink.services.search_text import listing_text, product_text

    conn = op.get_bind()
    codes = {}
    for product_id, sku, identifier in conn.execute(sa.text(
            "SELECT product_id, sku, identifier FROM listings WHERE product_id IS NOT NULL")):
        codes.setdefault(product_id, []).extend((sku, identifier))
    products = [{"pid": r[0], "t": product_text(r[1], r[2], r[3], r[4], r[5], codes.get(r[0], ()))}
                for r in conn.execute(sa.text(
                    "SELECT id, name, variation, smaregi_product_id, product_code, group_code FROM products"))]
    if products:
        conn.execute(sa.text("UPDATE products SET search_text = :t WHERE id = :pid"), products)
    listings = [{"lid": r[0], "t": listing_text(r[1], r[2], r[3])}
                for r in conn.execute(sa.text("SELECT id, identifier, sku, title FROM listings"))]
    if listings:
        conn.execute(sa.text("UPDATE listings SET search_text = :t WHERE id = :lid"), listings)


def downgrade():
    with op.batch_alter_table('channels', schema=None) as batch_op:
        for column in ('stale_alerted_at', 'heal_after_minutes', 'last_read_back_at', 'catalogue_imported_at',
                       'is_base'):
            batch_op.drop_column(column)
    with op.batch_alter_table('listings', schema=None) as batch_op:
        for column in ('removed_at', 'search_text', 'difference_since'):
            batch_op.drop_column(column)
    with op.batch_alter_table('products', schema=None) as batch_op:
        for column in ('removed_at', 'search_text'):
            batch_op.drop_column(column)
    with op.batch_alter_table('catalogue_imports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_catalogue_imports_channel_id'))
    op.drop_table('catalogue_imports')
