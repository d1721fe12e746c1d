"""session generation: logging out ends the user's sessions on the server

A session cookie is signed, not stored: until this revision one saved before logout still
opened every page. Each operator now has a generation, part of the id the cookie carries; a
logout or a new password moves it on, and cookies naming an older generation open nothing.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
