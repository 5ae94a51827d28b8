"""Fallback methods (docs/fallback-methods.md): one-time codes sent by email, SMS or WhatsApp
(otp_challenges), email magic links (magic_links), authenticator-app secrets (totp_secrets)
and recovery codes (recovery_codes). Codes and link secrets are stored only as keyed MACs;
TOTP secrets are sealed like other tenant secrets.

Expand only: new tables that processes of the previous release never read.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "otp_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("action_id", sa.String(length=36), nullable=True),
        sa.Column("authenticator_id", sa.String(length=36), nullable=True),
        sa.Column("action_code", sa.String(length=100), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("destination", sa.String(length=320), nullable=False),
        sa.Column("code_mac", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        _at("verified_at", True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_otp_challenges_tenant", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name="fk_otp_challenges_action", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_otp_challenges_user", "otp_challenges", ["tenant_id", "user_id", "method", "created_at"]
    )
    op.create_index("ix_otp_challenges_action", "otp_challenges", ["action_id"])
    op.create_index("ix_otp_challenges_expires", "otp_challenges", ["expires_at"])
    op.create_table(
        "magic_links",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("action_id", sa.String(length=36), nullable=False),
        sa.Column("authenticator_id", sa.String(length=36), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("link_mac", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        _at("created_at"),
        _at("expires_at"),
        _at("confirmed_at", True),
        _at("finalized_at", True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_magic_links_tenant", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name="fk_magic_links_action", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_magic_links_link_mac", "magic_links", ["link_mac"], unique=True)
    op.create_index("ix_magic_links_action", "magic_links", ["action_id"])
    op.create_index("ix_magic_links_expires", "magic_links", ["expires_at"])
    op.create_table(
        "totp_secrets",
        sa.Column("authenticator_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["authenticator_id"],
            ["authenticators.id"],
            name="fk_totp_secrets_authenticator",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("authenticator_id"),
    )
    op.create_index("ix_totp_secrets_tenant", "totp_secrets", ["tenant_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("authenticator_id", sa.String(length=36), nullable=False),
        sa.Column("code_mac", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        _at("used_at", True),
        sa.ForeignKeyConstraint(
            ["authenticator_id"],
            ["authenticators.id"],
            name="fk_recovery_codes_authenticator",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("authenticator_id", "code_mac"),
    )
    op.create_index("ix_recovery_codes_user", "recovery_codes", ["tenant_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_codes_user", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_totp_secrets_tenant", table_name="totp_secrets")
    op.drop_table("totp_secrets")
    op.drop_index("ix_magic_links_expires", table_name="magic_links")
    op.drop_index("ix_magic_links_action", table_name="magic_links")
    op.drop_index("ux_magic_links_link_mac", table_name="magic_links")
    op.drop_table("magic_links")
    op.drop_index("ix_otp_challenges_expires", table_name="otp_challenges")
    op.drop_index("ix_otp_challenges_action", table_name="otp_challenges")
    op.drop_index("ix_otp_challenges_user", table_name="otp_challenges")
    op.drop_table("otp_challenges")
