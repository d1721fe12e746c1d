"""web orders: one row per order, a deduction ledger keyed (order, revision, line, product), a
registration outbox per revision; each channel's order starting point, cursor and statuses;
channel order webhooks stored before they are answered; the stock movements stocklink's own
registrations will cause, so they are not forwarded to NextEngine twice

The orders, order_lines and registrations tables of 0001 were never written by any version of
stocklink (web orders arrive with this revision): they are replaced, not altered. A row found in
them (a hand-made one) is refused rather than dropped.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:35:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def _refuse_rows():
    connection = op.get_bind()
    for table in ('registrations', 'order_lines', 'orders'):
        if connection.exec_driver_sql(f'SELECT count(*) FROM {table}').scalar():
            raise RuntimeError(f'{table} holds rows, which no version of stocklink wrote: move them away first')


def upgrade():
    _refuse_rows()  # before any change: SQLite's DDL is not rolled back
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('orders_start_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('orders_cursor_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('orders_polled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('order_statuses', sa.JSON(), nullable=True))
    op.drop_table('registrations')
    op.drop_table('order_lines')
    op.drop_table('orders')
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('channel_order_id', sa.String(length=100), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('ignored_reason', sa.String(length=40), nullable=True),
    sa.Column('channel_status', sa.String(length=60), nullable=True),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('channel_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('resolved_by', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_orders_channel_id_channels'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('channel_id', 'channel_order_id', name='uq_orders_channel_order')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_state', ['state'], unique=False)
    op.create_table('order_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.String(length=100), nullable=False),
    sa.Column('listing_identifier', sa.String(length=255), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Integer(), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.Column('title', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('quantity >= 0', name=op.f('ck_order_lines_quantity_not_negative')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_lines_product_id_products'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines')),
    sa.UniqueConstraint('order_id', 'revision', 'line_id', 'product_id', name='uq_order_lines_deduction')
    )
    op.create_table('registrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=12), nullable=False),
    sa.Column('idempotency_key', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('smaregi_ref', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_registrations_order_id_orders'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registrations')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_registrations_idempotency_key'))
    )
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.create_index('ix_registrations_state', ['state'], unique=False)
    op.create_table('channel_webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=60), nullable=False),
    sa.Column('delivery_id', sa.String(length=100), nullable=False),
    sa.Column('order_id', sa.String(length=100), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_webhooks_channel_id_channels'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_webhooks')),
    sa.UniqueConstraint('channel_id', 'delivery_id', name='uq_channel_webhooks_delivery')
    )
    with op.batch_alter_table('channel_webhooks', schema=None) as batch_op:
        batch_op.create_index('ix_channel_webhooks_unprocessed', ['channel_id', 'processed_at'], unique=False)
    op.create_table('expected_echoes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_expected_echoes_product_id_products'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                            name=op.f('fk_expected_echoes_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_expected_echoes'))
    )
    with op.batch_alter_table('expected_echoes', schema=None) as batch_op:
        batch_op.create_index('ix_expected_echoes_open', ['product_id', 'consumed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_expected_echoes_registration_id'), ['registration_id'], unique=False)


def downgrade():
    _refuse_rows()
    op.drop_table('expected_echoes')
    op.drop_table('channel_webhooks')
    op.drop_table('registrations')
    op.drop_table('order_lines')
    op.drop_table('orders')
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('channel_order_id', sa.String(length=100), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('ordered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_orders_channel_id_channels'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('channel_id', 'channel_order_id', 'revision', name='uq_orders_revision')
    )
    op.create_table('order_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('listing_identifier', sa.String(length=255), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit_price', sa.Integer(), nullable=True),
    sa.Column('reserved', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_lines_order_id_orders'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_order_lines_product_id_products'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_lines')),
    sa.UniqueConstraint('order_id', 'line_no', name='uq_order_lines_line')
    )
    op.create_table('registrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('mode', sa.String(length=12), nullable=False),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('smaregi_ref', sa.String(length=100), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_registrations_order_id_orders'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registrations')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_registrations_idempotency_key'))
    )
    with op.batch_alter_table('channels', schema=None) as batch_op:
        batch_op.drop_column('order_statuses')
        batch_op.drop_column('orders_polled_at')
        batch_op.drop_column('orders_cursor_at')
        batch_op.drop_column('orders_start_at')
