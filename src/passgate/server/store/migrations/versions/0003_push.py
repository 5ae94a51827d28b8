"""push devices and push challenges

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 18:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_devices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("public_key", sa.String(length=200), nullable=False),
        sa.Column("device_name", sa.String(length=255), nullable=True),
        sa.Column("device_platform", sa.String(length=32), nullable=True),
        sa.Column("push_token", sa.String(length=4096), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("nonce", sa.String(length=64), nullable=True),
        sa.Column("nonce_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["id"], ["authenticators.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_push_devices_tenant_user", "push_devices", ["tenant_id", "user_id"])
    op.create_index("ux_push_devices_key", "push_devices", ["tenant_id", "public_key"], unique=True)
    op.create_table(
        "push_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("action_id", sa.String(length=36), nullable=False),
        sa.Column("authenticator_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("verification_code", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_authenticator_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["action_id"], ["actions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_push_challenges_action", "push_challenges", ["action_id"])
    op.create_index(
        "ix_push_challenges_user_created", "push_challenges", ["tenant_id", "user_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_push_challenges_user_created", table_name="push_challenges")
    op.drop_index("ix_push_challenges_action", table_name="push_challenges")
    op.drop_table("push_challenges")
    op.drop_index("ux_push_devices_key", table_name="push_devices")
    op.drop_index("ix_push_devices_tenant_user", table_name="push_devices")
    op.drop_table("push_devices")
