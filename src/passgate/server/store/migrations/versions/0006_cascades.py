"""cascades: foreign keys with ON DELETE CASCADE from a tenant down to everything a user owns,
so deleting a tenant, a user or an authenticator is one statement

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00

Rows the new keys would refuse (orphans) are mended first, and each fix is logged and written
to the audit log (action "migration.orphans"):

- users, authenticators, actions of a tenant that no longer exists are deleted, and so are
  the passkey credentials, push devices and push challenges hanging off them;
- an authenticator or action whose user is missing, in a tenant that exists, gets a bare user
  row back (a fresh handle, nothing verified): its history is kept rather than lost;
- passkey credentials and push devices whose authenticator is missing, and push challenges
  whose action is missing, are deleted: nothing can use them.

SQLite cannot add a foreign key to a table, so it rebuilds the table (create, copy, drop,
rename). Migrations run in one transaction with `PRAGMA foreign_keys=ON` (store/database.py),
which cannot be turned off inside a transaction; dropping the old table then deletes its rows
first and fires the ON DELETE CASCADE of every table that refers to it. So the rows of those
tables are set aside in a temporary table before the rebuild and put back after it.
"""

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

log = logging.getLogger("passgate.migrations")

ACTOR_ID = "migration 0006"
AUDIT_ACTION = "migration.orphans"

# name, table, its columns, referred table, referred columns; parents before children.
FOREIGN_KEYS: tuple[tuple[str, str, list[str], str, list[str]], ...] = (
    ("fk_users_tenant", "users", ["tenant_id"], "tenants", ["id"]),
    (
        "fk_authenticators_user",
        "authenticators",
        ["tenant_id", "user_id"],
        "users",
        ["tenant_id", "user_id"],
    ),
    ("fk_actions_user", "actions", ["tenant_id", "user_id"], "users", ["tenant_id", "user_id"]),
    (
        "fk_passkey_credentials_authenticator",
        "passkey_credentials",
        ["authenticator_id"],
        "authenticators",
        ["id"],
    ),
)

_users = sa.table(
    "users",
    sa.column("tenant_id", sa.String()),
    sa.column("user_id", sa.String()),
    sa.column("handle", sa.String()),
    sa.column("email_verified", sa.Boolean()),
    sa.column("phone_number_verified", sa.Boolean()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.String()),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    sa.column("actor_type", sa.String()),
    sa.column("actor_id", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target_type", sa.String()),
    sa.column("target_id", sa.String()),
    sa.column("tenant_id", sa.String()),
    sa.column("details", sa.JSON()),
)

# Rows of a tenant that exists (a parent of rows to keep).
_LIVE_TENANT = "EXISTS (SELECT 1 FROM tenants t WHERE t.id = {table}.tenant_id)"


def upgrade() -> None:
    bind = op.get_bind()
    _mend_orphans(bind)
    if bind.dialect.name == "sqlite":
        for name, table, columns, referent, referred in FOREIGN_KEYS:
            add = functools.partial(_add_foreign_key, name, referent, columns, referred)
            _sqlite_rebuild(bind, table, add)
        _sqlite_check(bind)
    else:
        for name, table, columns, referent, referred in FOREIGN_KEYS:
            op.create_foreign_key(name, table, referent, columns, referred, ondelete="CASCADE")


def downgrade() -> None:
    bind = op.get_bind()
    for name, table, *_ in reversed(FOREIGN_KEYS):
        if bind.dialect.name == "sqlite":
            _sqlite_rebuild(bind, table, functools.partial(_drop_foreign_key, name))
        else:
            op.drop_constraint(name, table, type_="foreignkey")
    if bind.dialect.name == "sqlite":
        _sqlite_check(bind)


def _add_foreign_key(
    name: str, referent: str, columns: list[str], referred: list[str], batch: BatchOperations
) -> None:
    batch.create_foreign_key(name, referent, columns, referred, ondelete="CASCADE")


def _drop_foreign_key(name: str, batch: BatchOperations) -> None:
    batch.drop_constraint(name, type_="foreignkey")


# Orphans -----------------------------------------------------------------------------------


def _mend_orphans(bind: sa.Connection) -> None:
    """Delete or adopt every row the new keys would refuse; log and audit each fix."""
    now = datetime.now(UTC)
    fixes: dict[str, dict[str, int]] = {}

    def count(table: str, key: str, value: int) -> None:
        if value:
            fixes.setdefault(table, {})[key] = value

    def delete(table: str, where: str) -> int:
        return bind.execute(sa.text(f"DELETE FROM {table} WHERE {where}")).rowcount

    # Children first, so each count is exact (no cascade deletes anything behind its back).
    count(
        "push_challenges",
        "deleted",
        delete(
            "push_challenges",
            "NOT EXISTS (SELECT 1 FROM actions a JOIN tenants t ON t.id = a.tenant_id"
            " WHERE a.id = push_challenges.action_id)",
        ),
    )
    for table, column in (("push_devices", "id"), ("passkey_credentials", "authenticator_id")):
        where = (
            "NOT EXISTS (SELECT 1 FROM authenticators a JOIN tenants t ON t.id = a.tenant_id"
            f" WHERE a.id = {table}.{column})"
        )
        count(table, "deleted", delete(table, where))
    for table in ("actions", "authenticators", "users"):
        count(table, "deleted", delete(table, "NOT " + _LIVE_TENANT.format(table=table)))

    # Authenticators and actions of a missing user (their tenant exists now): restore the user.
    missing: dict[tuple[str, str], None] = {}
    for table in ("authenticators", "actions"):
        rows = bind.execute(
            sa.text(
                f"SELECT tenant_id, user_id, count(*) FROM {table} x WHERE NOT EXISTS"
                " (SELECT 1 FROM users u WHERE u.tenant_id = x.tenant_id"
                " AND u.user_id = x.user_id) GROUP BY tenant_id, user_id"
            )
        ).all()
        count(table, "userRestored", sum(row[2] for row in rows))
        missing.update({(row[0], row[1]): None for row in rows})
    if missing:
        bind.execute(
            _users.insert(),
            [
                {
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "handle": str(uuid.uuid4()),
                    "email_verified": False,
                    "phone_number_verified": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for tenant_id, user_id in missing
            ],
        )
    count("users", "restored", len(missing))

    mismatched = bind.execute(
        sa.text(
            "SELECT count(*) FROM passkey_credentials p JOIN authenticators a"
            " ON a.id = p.authenticator_id"
            " WHERE a.tenant_id <> p.tenant_id OR a.user_id <> p.user_id"
        )
    ).scalar_one()
    if mismatched:
        log.warning(
            "migration 0006: %d passkey_credentials rows name another tenant or user than "
            "their authenticator; left as they are (they go with the authenticator)",
            mismatched,
        )

    order = ("users", "authenticators", "actions", "passkey_credentials", "push_devices")
    for table in sorted(fixes, key=lambda t: order.index(t) if t in order else len(order)):
        counts = fixes[table]
        log.warning(
            "migration 0006: orphans in %s: %s",
            table,
            ", ".join(f"{key} {value}" for key, value in counts.items()),
        )
        bind.execute(
            _audit_events.insert().values(
                id=str(uuid.uuid4()),
                occurred_at=now,
                actor_type="system",
                actor_id=ACTOR_ID,
                action=AUDIT_ACTION,
                target_type="table",
                target_id=table,
                tenant_id=None,
                details={"table": table, **counts},
            )
        )
    if not fixes:
        log.info("migration 0006: no orphans")


# SQLite rebuilds ---------------------------------------------------------------------------


def _sqlite_rebuild(
    bind: sa.Connection, table: str, change: Callable[[BatchOperations], None]
) -> None:
    """Rebuild `table` with `change` applied, keeping every row of the tables that refer to
    it (directly or not), which dropping the old table would otherwise delete or refuse."""
    dependents = _sqlite_dependents(bind, table)
    for name in dependents:
        bind.exec_driver_sql(f'CREATE TEMP TABLE "_m0006_{name}" AS SELECT * FROM "{name}"')
    for name in reversed(dependents):
        bind.exec_driver_sql(f'DELETE FROM "{name}"')
    with op.batch_alter_table(table, recreate="always") as batch:
        change(batch)
    for name in dependents:
        bind.exec_driver_sql(f'INSERT INTO "{name}" SELECT * FROM temp."_m0006_{name}"')
        bind.exec_driver_sql(f'DROP TABLE temp."_m0006_{name}"')


def _sqlite_dependents(bind: sa.Connection, table: str) -> list[str]:
    """The tables whose foreign keys lead to `table`, parents before children."""
    names = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    children: dict[str, set[str]] = {}
    for name in names:
        for row in bind.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")'):
            children.setdefault(row[2], set()).add(name)
    finished: list[str] = []

    def visit(name: str) -> None:
        for child in sorted(children.get(name, ())):
            if child not in finished and child != table:
                visit(child)
        if name not in finished:
            finished.append(name)

    visit(table)
    return [name for name in reversed(finished) if name != table]


def _sqlite_check(bind: sa.Connection) -> None:
    """Refuse to commit a rebuild that left a row its foreign keys do not allow."""
    problems = bind.exec_driver_sql("PRAGMA foreign_key_check").all()
    if problems:
        raise RuntimeError(f"migration 0006: foreign key violations after rebuild: {problems}")
