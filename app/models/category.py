"""categories: named segments of contacts that campaigns target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, IdMixin, TimestampMixin

if TYPE_CHECKING:
    from app.models.contact import Contact

category_contacts = Table(
    "category_contacts",
    Base.metadata,
    Column(
        "category_id",
        BigInteger,
        ForeignKey("categories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "contact_id",
        BigInteger,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # Audit 3.3: one index per column (the PK alone serves only category_id-first lookups).
    Index(None, "category_id"),
    Index(None, "contact_id"),
)


class Category(IdMixin, TimestampMixin, Base):
    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)

    contacts: Mapped[list[Contact]] = relationship(
        secondary=category_contacts, lazy="raise", back_populates="categories"
    )
