"""contact search indexes: a short pending list

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:00:00.000000

`contacts(search:)` matches `name ILIKE p OR phone ILIKE p`, served by the trigram indexes
of migration 0001. Rows written to a GIN index first go to its pending list, merged in by
vacuum or once the list passes `gin_pending_list_limit` (4 MB by default); the planner
counts that list in the cost of every index scan. After a 10,000-row import the list made
a scan of the whole table look cheaper, so every search read every contact until the next
vacuum. At 256 kB the list is merged as imports go, at no measurable cost to them, and the
search keeps its bitmap index scans.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = ("ix_contacts_name", "ix_contacts_phone")


def upgrade() -> None:
    """Upgrade schema."""
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = 256)")


def downgrade() -> None:
    """Downgrade schema."""
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (gin_pending_list_limit)")
