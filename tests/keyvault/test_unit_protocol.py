"""Pure protocol pieces: paging tokens, routing, Host policy, challenge, roles."""

from __future__ import annotations

import pytest
from azure.keyvault.secrets._shared import HttpChallenge

from keyvault_emulator import errors
from keyvault_emulator.auth import (
    DATA_ACTIONS,
    Role,
    TokenTable,
    authenticate,
    authorize,
    bearer_token,
    challenge,
)
from keyvault_emulator.hosts import HostPolicy, split_host
from keyvault_emulator.paging import (
    PagingError,
    decode_marker,
    encode_marker,
    parse_maxresults,
    take_page,
)
from keyvault_emulator.routing import OPERATIONS, Route, match

# -- paging ------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["a", "db-pass", "Z" * 127, "0" * 32, "ü?&=+/ "])
def test_skiptoken_round_trips_and_is_query_safe(marker: str) -> None:
    token = encode_marker(marker)
    assert decode_marker(token) == marker
    # No character the SDK's parse_qs/quote round trip would change.
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("token", ["", "!!!", "bm90IGpzb24", encode_marker("x")[:-3] + "AAA"])
def test_foreign_skiptokens_are_refused(token: str) -> None:
    with pytest.raises(PagingError):
        decode_marker(token)


@pytest.mark.parametrize(("text", "size"), [(None, 25), ("", 25), ("1", 1), ("25", 25)])
def test_maxresults_defaults_to_the_service_page_size(text: str | None, size: int) -> None:
    assert parse_maxresults(text) == size


@pytest.mark.parametrize("text", ["0", "26", "-1", "two", "1.5"])
def test_maxresults_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(PagingError):
        parse_maxresults(text)


@pytest.mark.parametrize(
    ("after", "size", "items", "marker"),
    [
        (None, 2, ["a", "b"], "b"),
        ("b", 2, ["c", "d"], "d"),
        ("d", 2, ["e"], None),
        (None, 5, ["a", "b", "c", "d", "e"], None),
        ("bb", 1, ["c"], "c"),  # a marker between items (the item was deleted)
        ("z", 3, [], None),
    ],
)
def test_take_page(after: str | None, size: int, items: list[str], marker: str | None) -> None:
    page = take_page(["a", "b", "c", "d", "e"], lambda s: s, after, size)
    assert (page.items, page.next_marker) == (items, marker)


# -- routing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("GET", "/secrets", Route("ListSecrets")),
        ("GET", "/secrets/", Route("ListSecrets")),
        ("PUT", "/secrets/db", Route("SetSecret", "db")),
        ("GET", "/secrets/db", Route("GetSecret", "db")),
        ("GET", "/secrets/db/", Route("GetSecret", "db", "")),
        ("GET", "/secrets/db/" + "a" * 32, Route("GetSecret", "db", "a" * 32)),
        ("PATCH", "/secrets/db/", Route("UpdateSecret", "db", "")),
        ("PATCH", "/secrets/db/" + "b" * 32, Route("UpdateSecret", "db", "b" * 32)),
        ("DELETE", "/secrets/db", Route("DeleteSecret", "db")),
        ("GET", "/secrets/db/versions", Route("ListSecretVersions", "db")),
        ("POST", "/secrets/db/backup", Route("BackupSecret", "db")),
        ("POST", "/secrets/restore", Route("RestoreSecret")),
        ("PUT", "/secrets/restore", Route("SetSecret", "restore")),
        ("GET", "/deletedsecrets", Route("ListDeletedSecrets")),
        ("GET", "/deletedsecrets/db", Route("GetDeletedSecret", "db")),
        ("DELETE", "/deletedsecrets/db", Route("PurgeDeletedSecret", "db")),
        ("POST", "/deletedsecrets/db/recover", Route("RecoverDeletedSecret", "db")),
        ("GET", "/secrets/bad%20name", Route("GetSecret", "bad name")),
        ("GET", "/secrets/a%2Fb", Route("GetSecret", "a/b")),
    ],
)
def test_routes(method: str, path: str, route: Route) -> None:
    assert match(method, path) == route
    assert route.operation in OPERATIONS


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/keys/k", 404),
        ("GET", "/secrets/a/b/c", 404),
        ("POST", "/secrets", 405),
        ("POST", "/secrets/db", 405),
        ("PUT", "/secrets/db/", 405),
        ("GET", "/deletedsecrets/db/recover", 405),
    ],
)
def test_unrouted_requests(method: str, path: str, status: int) -> None:
    with pytest.raises(errors.VaultError) as exc:
        match(method, path)
    assert exc.value.status == status


# -- Host header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8046", True),
        ("localhost:8046", True),
        ("LOCALHOST:8046", True),
        ("[::1]:8046", True),
        ("127.0.0.2:8046", True),  # all of 127/8 is loopback
        ("127.0.0.1:8047", False),
        ("127.0.0.1", False),  # no port means 443
        ("evil.example:8046", False),
        ("localhost.evil.example:8046", False),
        ("10.0.0.1:8046", False),
        ("myvault.test:8046", True),  # extra host, on the bound port
        ("myvault.test:9000", False),
        ("other.test:9443", True),  # extra host with its own port
        ("[::1", False),
        ("127.0.0.1:port", False),
        ("", False),
    ],
)
def test_host_policy(host: str, allowed: bool) -> None:
    policy = HostPolicy(8046, ("myvault.test", "other.test:9443"))
    assert policy.allows(host) is allowed


def test_split_host_handles_ipv6() -> None:
    assert split_host("[::1]:443") == ("::1", 443)
    assert split_host("[::1]") == ("::1", None)
    assert split_host("[::1]x") is None


# -- authentication and roles ------------------------------------------------------------


def test_challenge_parses_in_the_sdk_as_tenant_and_vault_scope() -> None:
    header = challenge("my-tenant")
    assert header == (
        'Bearer authorization="https://login.microsoftonline.com/my-tenant", '
        'resource="https://vault.azure.net"'
    )
    parsed = HttpChallenge("https://127.0.0.1:8046/secrets/x", header)
    assert parsed.tenant_id == "my-tenant"
    assert parsed.get_resource() == "https://vault.azure.net"
    assert parsed.is_bearer_challenge()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_authenticate_answers_401_with_the_challenge() -> None:
    table = TokenTable({Role.READER: "r-token", Role.SECRETS_USER: "u-token"})
    assert authenticate(table, "Bearer u-token", "t") is Role.SECRETS_USER
    for header in (None, "Bearer wrong", "Bearer r-token2"):
        with pytest.raises(errors.VaultError) as exc:
            authenticate(table, header, "t")
        assert exc.value.status == 401
        assert dict(exc.value.headers)["www-authenticate"] == challenge("t")
        assert "r-token" not in exc.value.message


READS = {"GetSecret"}
LISTS = {"ListSecrets", "ListSecretVersions", "ListDeletedSecrets", "GetDeletedSecret"}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("operation", sorted(DATA_ACTIONS))
def test_role_grants(role: Role, operation: str) -> None:
    allowed = {
        Role.READER: LISTS,
        Role.SECRETS_USER: LISTS | READS,
        Role.SECRETS_OFFICER: set(DATA_ACTIONS),
    }[role]
    if operation in allowed:
        authorize(role, operation, resource="/r", vault="v")
        return
    with pytest.raises(errors.VaultError) as exc:
        authorize(role, operation, resource="/r/secrets/s", vault="v")
    assert (exc.value.status, exc.value.code, exc.value.inner_code) == (
        403,
        "Forbidden",
        "ForbiddenByRbac",
    )
    assert f"Action: '{DATA_ACTIONS[operation]}'" in exc.value.message
    assert "Assignment: (not found)" in exc.value.message
    assert exc.value.message.startswith("Caller is not authorized to perform action on resource.")
