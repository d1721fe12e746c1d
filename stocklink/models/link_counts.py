"""``products.linked_listings``: how many listings are linked to each product, kept by the
database itself, so the grid's "linked" and "unlinked" filters read one column of the product
instead of asking 400,000 listings (bench/grid.py: on PostgreSQL the "unlinked" count and page
each read the whole listings index, 150 ms together at 100,000 products).

Triggers rather than code: a listing's product changes in many places (import, auto-link, the
link screen, a product removed, ``ON DELETE SET NULL``, bulk inserts that skip the ORM), and a
trigger sees every one of them. They are installed when ``listings`` is created
(``create_all``) and by revision 0012. A later migration that rebuilds ``listings`` on SQLite
(``batch_alter_table`` copying the table) drops its triggers and must call :func:`install`
again; tests/test_migrations.py checks the count after a full upgrade.
"""
from __future__ import annotations

from sqlalchemy import event

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION stocklink_count_linked_listings() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.product_id IS NOT NULL THEN
        UPDATE products SET linked_listings = linked_listings - 1 WHERE id = OLD.product_id;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.product_id IS NOT NULL THEN
        UPDATE products SET linked_listings = linked_listings + 1 WHERE id = NEW.product_id;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""

STATEMENTS = {
    "postgresql": [
        PG_FUNCTION,
        "CREATE TRIGGER listings_linked_insert_delete AFTER INSERT OR DELETE ON listings "
        "FOR EACH ROW EXECUTE FUNCTION stocklink_count_linked_listings()",
        "CREATE TRIGGER listings_linked_update AFTER UPDATE OF product_id ON listings FOR EACH ROW "
        "WHEN (OLD.product_id IS DISTINCT FROM NEW.product_id) EXECUTE FUNCTION stocklink_count_linked_listings()",
    ],
    "sqlite": [
        "CREATE TRIGGER listings_linked_insert AFTER INSERT ON listings WHEN NEW.product_id IS NOT NULL BEGIN "
        "UPDATE products SET linked_listings = linked_listings + 1 WHERE id = NEW.product_id; END",
        "CREATE TRIGGER listings_linked_delete AFTER DELETE ON listings WHEN OLD.product_id IS NOT NULL BEGIN "
        "UPDATE products SET linked_listings = linked_listings - 1 WHERE id = OLD.product_id; END",
        "CREATE TRIGGER listings_linked_update AFTER UPDATE OF product_id ON listings "
        "WHEN OLD.product_id IS NOT NEW.product_id BEGIN "
        "UPDATE products SET linked_listings = linked_listings - 1 WHERE id = OLD.product_id; "
        "UPDATE products SET linked_listings = linked_listings + 1 WHERE id = NEW.product_id; END",
    ],
}

DROP = {
    "postgresql": ["DROP TRIGGER IF EXISTS listings_linked_insert_delete ON listings",
                   "DROP TRIGGER IF EXISTS listings_linked_update ON listings",
                   "DROP FUNCTION IF EXISTS stocklink_count_linked_listings()"],
    "sqlite": ["DROP TRIGGER IF EXISTS listings_linked_insert", "DROP TRIGGER IF EXISTS listings_linked_delete",
               "DROP TRIGGER IF EXISTS listings_linked_update"],
}

# Every product's count from its listings (a migration's backfill; a repair if ever needed).
RECOUNT = ("UPDATE products SET linked_listings = "
           "(SELECT count(*) FROM listings WHERE listings.product_id = products.id)")


def install(connection) -> None:
    """Create the triggers on ``connection``'s database (PostgreSQL or SQLite)."""
    for statement in STATEMENTS[connection.dialect.name]:
        connection.exec_driver_sql(statement)


def uninstall(connection) -> None:
    for statement in DROP[connection.dialect.name]:
        connection.exec_driver_sql(statement)


def listen(listings_table) -> None:
    """Install the triggers whenever ``listings`` is created by ``create_all``."""
    event.listen(listings_table, "after_create", lambda _table, connection, **_kw: install(connection))
