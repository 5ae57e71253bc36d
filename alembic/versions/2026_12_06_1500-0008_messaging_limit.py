"""messaging limit and sender numbers

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06 15:00:00

The portfolio's messaging limit as last reported (one row), the sender numbers campaigns
send through (throughput, quality, status), the number a campaign is bound to (NULL: the
pool), and each contact's last inbound message, which opens its customer-service window
(filled from the interactions recorded so far).
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
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
SENDER_UNAVAILABLE = "sender_number_unavailable"


def _pause_codes(codes: Sequence[str]) -> None:
    values = ", ".join(f"'{code}'" for code in codes)
    name = op.f("ck_campaigns_pause_code")
    op.drop_constraint(name, "campaigns", type_="check")
    op.create_check_constraint(name, "campaigns", f"pause_code IN ({values})")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "messaging_limit",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("tier", sa.Integer(), nullable=True),
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_messaging_limit_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messaging_limit")),
    )
    op.create_table(
        "sender_numbers",
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("display_number", sa.String(length=32), nullable=False),
        sa.Column("throughput", sa.Integer(), nullable=False),
        sa.Column(
            "quality_rating",
            sa.Enum(
                "green",
                "yellow",
                "red",
                "unknown",
                name="quality_rating",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="unknown",
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "connected",
                "flagged",
                name="sender_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            server_default="connected",
            nullable=False,
        ),
        sa.Column("flagged_reason", sa.Text(), nullable=True),
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sender_numbers")),
        sa.UniqueConstraint("phone_number_id", name=op.f("uq_sender_numbers_phone_number_id")),
    )
    op.add_column("campaigns", sa.Column("sender_number_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_campaigns_sender_number_id_sender_numbers"),
        "campaigns",
        "sender_numbers",
        ["sender_number_id"],
        ["id"],
        ondelete="SET NULL",
    )
    _pause_codes((*PAUSE_CODES, SENDER_UNAVAILABLE))
    op.add_column(
        "contacts", sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        op.f("ix_contacts_last_inbound_at"), "contacts", ["last_inbound_at"], unique=False
    )
    op.execute(
        """
        UPDATE contacts c SET last_inbound_at = i.at
        FROM (SELECT m.contact_id, max(i.created_at) AS at
              FROM interactions i JOIN messages m ON m.id = i.message_id
              GROUP BY m.contact_id) AS i
        WHERE c.id = i.contact_id
        """
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index(op.f("ix_contacts_last_inbound_at"), table_name="contacts")
    op.drop_column("contacts", "last_inbound_at")
    op.execute(f"UPDATE campaigns SET pause_code = NULL WHERE pause_code = '{SENDER_UNAVAILABLE}'")
    _pause_codes(PAUSE_CODES)
    op.drop_constraint(
        op.f("fk_campaigns_sender_number_id_sender_numbers"), "campaigns", type_="foreignkey"
    )
    op.drop_column("campaigns", "sender_number_id")
    op.drop_table("sender_numbers")
    op.drop_table("messaging_limit")
