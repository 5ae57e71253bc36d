"""error classes: a paused campaign's reason, a message's error code and its deferrals

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 13:00:00

Campaigns paused by Herald over a Cloud API error keep why (a machine-readable code, the
Cloud API's error code and what to do); messages keep the provider's error code, and a
message put back by a retry-later error waits until `not_before`, `deferrals` times at most.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAUSE_CODES = (
    "template_paused",
    "template_disabled",
    "template_mismatch",
    "spam_rate_limit",
    "account_restricted",
    "payment_required",
    "access_token_invalid",
)


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column(
        "campaigns",
        sa.Column(
            "pause_code",
            sa.Enum(
                *PAUSE_CODES,
                name="pause_code",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
    )
    op.add_column("campaigns", sa.Column("pause_error_code", sa.Integer(), nullable=True))
    op.add_column("campaigns", sa.Column("pause_message", sa.Text(), nullable=True))
    op.add_column("messages", sa.Column("error_code", sa.Integer(), nullable=True))
    op.add_column("messages", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "messages",
        sa.Column("deferrals", sa.SmallInteger(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column("messages", "deferrals")
    op.drop_column("messages", "not_before")
    op.drop_column("messages", "error_code")
    op.drop_column("campaigns", "pause_message")
    op.drop_column("campaigns", "pause_error_code")
    op.drop_column("campaigns", "pause_code")
