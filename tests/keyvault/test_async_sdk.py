"""The asyncio client (``azure.keyvault.secrets.aio``, aiohttp transport) against the emulator."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from keyvault_emulator.server import KeyVaultServer
from tests.keyvault.helpers import error_codes


async def test_async_round_trip(fresh: KeyVaultServer) -> None:
    credential = fresh.async_credential("secrets-officer")
    async with SecretClient(fresh.url, credential, **fresh.client_options()) as client:
        for i in range(3):
            await client.set_secret(f"a-{i}", f"value-{i}")
        got = await client.get_secret("a-1")
        assert got.value == "value-1"
        names = [p.name async for p in client.list_properties_of_secrets(max_page_size=2)]
        assert names == ["a-0", "a-1", "a-2"]
        await client.update_secret_properties("a-2", enabled=False)
        with pytest.raises(HttpResponseError) as info:
            await client.get_secret("a-2")
        assert error_codes(info.value) == (403, "Forbidden", "SecretDisabled")
        with pytest.raises(ResourceNotFoundError):
            await client.get_secret("missing")
    assert fresh.control.count("ListSecrets", status=200) == 2
    assert credential.requests[0][0] == ("https://vault.azure.net/.default",)


async def test_async_reader_is_forbidden(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    credential = fresh.async_credential("reader")
    async with SecretClient(fresh.url, credential, retry_total=0, **fresh.client_options()) as c:
        with pytest.raises(HttpResponseError) as info:
            await c.get_secret("s")
    assert error_codes(info.value) == (403, "Forbidden", "ForbiddenByRbac")
