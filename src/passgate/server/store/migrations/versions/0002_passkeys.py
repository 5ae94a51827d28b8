"""passkeys: credentials, challenges, tenants by relying party id

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 18:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passkey_credentials",
        sa.Column("authenticator_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("attestation_format", sa.String(length=32), nullable=False),
        sa.Column("device_type", sa.String(length=16), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("authenticator_attachment", sa.String(length=32), nullable=True),
        sa.Column("device_id", sa.String(length=255), nullable=True),
        sa.Column("user_agent", sa.String(length=1024), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flag_reason", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("authenticator_id"),
    )
    with op.batch_alter_table("passkey_credentials", schema=None) as batch_op:
        batch_op.create_index(
            "ix_passkey_credentials_tenant_user", ["tenant_id", "user_id"], unique=False
        )
        batch_op.create_index(
            "ux_passkey_credentials_tenant_credential",
            ["tenant_id", "credential_id"],
            unique=True,
        )

    op.create_table(
        "passkey_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("action_code", sa.String(length=100), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("passkey_challenges", schema=None) as batch_op:
        batch_op.create_index("ix_passkey_challenges_expires", ["expires_at"], unique=False)

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.create_index("ix_tenants_rp_id", ["rp_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_index("ix_tenants_rp_id")
    with op.batch_alter_table("passkey_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_passkey_challenges_expires")
    op.drop_table("passkey_challenges")
    with op.batch_alter_table("passkey_credentials", schema=None) as batch_op:
        batch_op.drop_index("ux_passkey_credentials_tenant_credential")
        batch_op.drop_index("ix_passkey_credentials_tenant_user")
    op.drop_table("passkey_credentials")
