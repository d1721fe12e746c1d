"""orphans from unenforced foreign keys: rows SQLite kept after their parent was deleted

Until this revision SQLite ran with foreign keys off, so deleting a channel or a product
left the rows that refer to it behind (the demo's second start then failed on its old
listings). Those rows are settled here as the foreign key's ON DELETE says: cascaded rows
are deleted, SET NULL columns set to NULL. PostgreSQL always enforced them: nothing to do.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 20:00:00

"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# (table, column, parent table, ON DELETE). Orders come before their lines and registrations:
# an order deleted here leaves lines that the later entries then find orphaned, in one pass.
FOREIGN_KEYS = [
    ("orders", "channel_id", "channels", "CASCADE"),
    ("registrations", "order_id", "orders", "CASCADE"),
    ("order_lines", "order_id", "orders", "CASCADE"),
    ("order_lines", "product_id", "products", "SET NULL"),
    ("errors", "channel_id", "channels", "CASCADE"),
    ("listings", "channel_id", "channels", "CASCADE"),
    ("listings", "product_id", "products", "SET NULL"),
    ("set_components", "component_id", "products", "CASCADE"),
    ("set_components", "set_product_id", "products", "CASCADE"),
    ("stock_ledger", "product_id", "products", "CASCADE"),
    ("confirmation_items", "product_id", "products", "SET NULL"),
    ("confirmation_items", "last_inbox_id", "smaregi_inbox", "SET NULL"),
]


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, column, parent, on_delete in FOREIGN_KEYS:
        orphan = f"{column} IS NOT NULL AND {column} NOT IN (SELECT id FROM {parent})"
        if on_delete == "CASCADE":
            op.execute(f"DELETE FROM {table} WHERE {orphan}")
        else:
            op.execute(f"UPDATE {table} SET {column} = NULL WHERE {orphan}")


def downgrade():
    pass  # the rows removed were dangling references; there is nothing to put back
