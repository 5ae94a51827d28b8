"""tenants.retired_signing_keys: the public halves of signing keys a rotation replaced
(`passgate keys rotate-signing`), each with the time after which no token it signed can still
be valid; the JWKS serves them and token checks accept them until then.

Expand only: a new nullable column that processes of the previous release never read (they
select the columns they know), so old and new processes run side by side during a rolling
upgrade. A tenant with none has NULL.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("retired_signing_keys", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("retired_signing_keys")
