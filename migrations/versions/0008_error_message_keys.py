"""error message keys: an error is stored as a kind of sentence and its parameters

The console rendered whatever sentence the job had written, in Japanese, whatever the
merchant's language. From this revision an error row names its sentence (``message_key``)
and its parameters (``message_params``); the sentence is rendered in the merchant's language
when the page or mail is made, and ``message`` keeps only the platform's own words. Rows
from before keep their sentence in ``message`` and are shown as they were written.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('errors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_key', sa.String(length=60), nullable=True))
        batch_op.add_column(sa.Column('message_params', sa.JSON(), nullable=True))


def downgrade():
    # Without the catalogue an older stocklink shows ``message`` alone: give keyed rows their key.
    op.execute("UPDATE errors SET message = message_key || CASE WHEN message = '' THEN '' ELSE ': ' || message END "
               "WHERE message_key IS NOT NULL")
    with op.batch_alter_table('errors', schema=None) as batch_op:
        batch_op.drop_column('message_params')
        batch_op.drop_column('message_key')
