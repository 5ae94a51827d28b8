"""hardening: credential algorithms and chain checks, stateless push nonces, client-made
actions, enrolment tokens used up, rate-limit windows

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("passkey_credentials") as batch_op:
        batch_op.add_column(sa.Column("public_key_algorithm", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("attestation_verified", sa.Boolean(), nullable=True))
    op.execute("UPDATE passkey_credentials SET attestation_verified = false")
    with op.batch_alter_table("passkey_credentials") as batch_op:
        batch_op.alter_column("attestation_verified", existing_type=sa.Boolean(), nullable=False)

    with op.batch_alter_table("actions") as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("authenticator_added_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE actions SET origin = 'server'")
    with op.batch_alter_table("actions") as batch_op:
        batch_op.alter_column("origin", existing_type=sa.String(length=16), nullable=False)
    op.create_index(
        "ix_actions_origin_state_updated", "actions", ["origin", "state", "state_updated_at"]
    )

    op.create_table(
        "push_used_nonces",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_push_used_nonces_expires", "push_used_nonces", ["expires_at"])

    op.create_table(
        "rate_limit_windows",
        sa.Column("bucket", sa.String(length=255), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bucket"),
    )
    op.create_index("ix_rate_limit_windows_expires", "rate_limit_windows", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_windows_expires", table_name="rate_limit_windows")
    op.drop_table("rate_limit_windows")
    op.drop_index("ix_push_used_nonces_expires", table_name="push_used_nonces")
    op.drop_table("push_used_nonces")
    op.drop_index("ix_actions_origin_state_updated", table_name="actions")
    with op.batch_alter_table("actions") as batch_op:
        batch_op.drop_column("authenticator_added_at")
        batch_op.drop_column("origin")
    with op.batch_alter_table("passkey_credentials") as batch_op:
        batch_op.drop_column("attestation_verified")
        batch_op.drop_column("public_key_algorithm")
