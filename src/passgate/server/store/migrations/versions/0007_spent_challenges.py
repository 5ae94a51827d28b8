"""One table of spent challenges for passkeys and push.

Challenges are stateless, signed messages (services/challenges.py): issuing one writes nothing,
and the answer that uses it up inserts its digest here, so a second answer with the same
message conflicts. `push_used_nonces` (0005) is superseded by this table; it stays until a
later contract migration drops it, so processes of the previous release keep working during a
rolling upgrade.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spent_challenges",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_spent_challenges_expires", "spent_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_spent_challenges_expires", table_name="spent_challenges")
    op.drop_table("spent_challenges")
