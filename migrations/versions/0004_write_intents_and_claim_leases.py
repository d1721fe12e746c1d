"""write intents (a channel write recorded before it is sent) and inbox claim leases

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:20:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'write_intents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=True),
        sa.Column('batch', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=20), nullable=False),
        sa.Column('identifier', sa.String(length=255), nullable=False),
        sa.Column('before', sa.BigInteger(), nullable=True),
        sa.Column('after', sa.BigInteger(), nullable=True),
        sa.Column('delta', sa.BigInteger(), nullable=True),
        sa.Column('key', sa.String(length=255), nullable=False, server_default=''),
        sa.Column('fact_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False, server_default='open'),
        sa.Column('outcome', sa.String(length=20), nullable=True),
        sa.Column('ref', sa.String(length=100), nullable=True),
        sa.Column('read_back', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name='fk_write_intents_channel_id_channels',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], name='fk_write_intents_listing_id_listings',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_write_intents'),
    )
    op.create_index('ix_write_intents_channel_status', 'write_intents', ['channel_id', 'status'])
    with op.batch_alter_table('smaregi_inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('smaregi_inbox', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
    op.drop_index('ix_write_intents_channel_status', table_name='write_intents')
    op.drop_table('write_intents')
