"""services/code_macs: a tenant's code MAC key is made once (two transactions racing to make it
both end with the first one's), is stored sealed, survives a master key rotation unchanged (so
recovery codes stay valid), and a MAC for one purpose or tenant never matches another."""

from __future__ import annotations

import asyncio
from pathlib import Path

from passgate.server.services import code_macs, secrets_box, tenants
from passgate.server.settings import Settings
from passgate.server.store.database import create_engine
from passgate.server.store.db import Engines
from passgate.server.store.migrate import upgrade


def test_key_made_once_sealed_and_kept_across_a_master_key_rotation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'macs.db'}"
    # The session's data directory, hence its master key: `prepare` installs it process-wide.
    settings = Settings(database_url=url)

    async def run() -> None:
        await upgrade(url)
        engine = create_engine(url)
        engines = Engines(engine)
        try:
            async with engines.transaction() as db:
                old = await secrets_box.prepare(db, settings)
                tenant, _ = await tenants.create_tenant(db, name="Macs", rp_id="macs.example")
                other, _ = await tenants.create_tenant(db, name="Other", rp_id="other.example")
            # Two requests that both find no key: the second, waiting for the row's lock,
            # takes the key the first wrote instead of making its own.
            async with engines.transaction() as db:
                first = await code_macs.tenant_key(db, tenant)
            async with engines.transaction() as db:
                second = await code_macs.tenant_key(db, tenant)
            assert first == second and len(first) == 32
            async with engines.transaction() as db:
                stored = (await tenants.get_tenant(db, tenant.id)).settings[code_macs.SETTING]
                other_key = await code_macs.tenant_key(db, other)
            assert secrets_box.is_sealed(stored)
            assert other_key != first

            code_mac = code_macs.mac(first, "otp", "123456")
            assert code_macs.matches(first, "otp", "123456", code_mac)
            assert not code_macs.matches(first, "otp", "123457", code_mac)
            assert not code_macs.matches(first, "recovery", "123456", code_mac)
            assert not code_macs.matches(other_key, "otp", "123456", code_mac)

            new = secrets_box.MasterKey.generate()
            async with engines.transaction() as db:
                assert await secrets_box.reseal_all(db, old, new) >= 2
            # This process may open values sealed under the new key (installing it as the
            # current key would change what the other tests' servers in this process seal).
            secrets_box._keys[new.key_id] = new
            async with engines.transaction() as db:
                rotated = await tenants.get_tenant(db, tenant.id)
                assert rotated.settings[code_macs.SETTING] != stored
                assert secrets_box.key_id_in(rotated.settings[code_macs.SETTING]) == new.key_id
                assert await code_macs.tenant_key(db, rotated) == first
        finally:
            await engine.dispose()

    asyncio.run(run())
