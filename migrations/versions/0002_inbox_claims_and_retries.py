"""inbox claims and retry times: the inbox is drained in batches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('smaregi_inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('smaregi_inbox', schema=None) as batch_op:
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('claimed_at')
