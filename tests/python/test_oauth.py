"""OAuth 2.1 against a real authorization server: npm oidc-provider on
loopback (tests/oauth/provider.mjs), the daemon as its resource server, the
Python SDK discovering everything from the 401: its client-credentials flow,
and its authorization-code flow with PKCE and dynamic registration, the
provider's login and consent pages filled in headless.

Tokens the provider would never issue (expired, for another audience, from
another issuer, under an unknown key, `alg: none`, without a scope) are
signed here with the provider's own key (or another), so each is refused for
exactly one reason. Key rotation restarts the provider with a new signing key.
"""

import base64
import contextlib
import json
import os
import pathlib
import socket
import subprocess
import time

import re
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from conftest import ROOT, example_binary

pytestmark = pytest.mark.anyio

KEYS = ROOT / "tests" / "data" / "oauth"
SECRET = "-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def provider(resource: str, keys: str, port: int = 0):
    """oidc-provider with signing keys `keys` (`kid=file,...`; the first
    signs); yields its issuer URL."""
    node = os.environ.get("NODE")
    modules = os.environ.get("OIDC_PROVIDER_MODULES")
    if not node or not modules:
        pytest.fail("NODE and OIDC_PROVIDER_MODULES must be set (scripts/test.sh installs both)")
    keys = ",".join(f"{kid}={KEYS / name}" for kid, name in (k.split("=") for k in keys.split(",")))
    env = {**os.environ, "RESOURCE": resource, "PROVIDER_KEYS": keys, "PORT": str(port),
           "OIDC_PROVIDER_MODULES": modules}
    proc = subprocess.Popen([node, str(ROOT / "tests" / "oauth" / "provider.mjs")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def daemon(home, port: int, issuer: str, introspect: bool = False, extra=()):
    """The daemon requiring tokens of `issuer` for its /mcp (opaque ones
    checked by introspection if `introspect`); yields its URL."""
    env = {**os.environ, "HOME": str(home)}
    if introspect:
        env["MCP_OAUTH_INTROSPECTION_SECRET"] = "introspector" + SECRET
    for key in list(env):
        if key.startswith("SNOWFLAKE_"):
            del env[key]
    url = f"http://127.0.0.1:{port}/mcp"
    args = [example_binary("server"), "--port", str(port), "--allow", "SELECT,SHOW,DESCRIBE,EXPLAIN,CREATE",
            "--oauth-issuer", issuer, "--oauth-resource", url,
            "--oauth-scopes", "mcp:read", "--oauth-write-scope", "mcp:write",
            "--oauth-refetch-interval", "1s", "--log", "snowflake_mcp=debug"]
    if introspect:
        args += ["--oauth-introspection-client-id", "introspector"]
    args += list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://"), line
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        logs = proc.stderr.read()
        # No token, and no client secret, ever reaches the logs.
        assert "eyJ" not in logs, logs[-2000:]
        assert SECRET not in logs


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def sdk_auth(url: str, issuer: str, client: str, scope: str) -> ClientCredentialsOAuthProvider:
    return ClientCredentialsOAuthProvider(server_url=url, storage=Memory(), client_id=client,
                                          client_secret=client + SECRET, scope=scope, issuer=issuer)


async def query(url: str, auth, sql: str, mode: str = "legacy", headers=None):
    async with httpx2.AsyncClient(auth=auth, headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "execute_query" in names
            return await client.call_tool("execute_query", {"query": sql})


@pytest.fixture
def setup(tmp_path):
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with provider(resource, "a=key_a.pem") as issuer, daemon(tmp_path, port, issuer) as url:
        yield url, issuer


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_sdk_finds_the_provider_from_the_401_and_calls_tools(setup, mode):
    url, issuer = setup
    result = await query(url, sdk_auth(url, issuer, "writer", "mcp:read mcp:write"),
                         "SELECT 7 AS n", mode)
    assert not result.is_error, result
    assert result.structured_content["rows"] == [[7]]


async def test_a_token_with_the_write_scope_may_write(setup):
    # The SDK asks for the scope the 401 names (mcp:read); a client that
    # wants to write asks the provider for mcp:write itself.
    url, issuer = setup
    token = token_endpoint_token(issuer, "writer", "mcp:read mcp:write", url)
    headers = {"authorization": f"Bearer {token}"}
    created = await query(url, None, "CREATE TABLE notes (body TEXT)", headers=headers)
    # Past the statement guard (a read-only token is refused there, see
    # below); the daemon opens SQLite read-only whatever --allow says, so
    # the warehouse itself stops it.
    assert created.content[0].text.startswith("Warehouse error"), created
    assert "readonly" in created.content[0].text


async def test_a_token_without_the_write_scope_runs_read_only_statements(setup):
    url, issuer = setup
    auth = sdk_auth(url, issuer, "reader", "mcp:read")
    refused = await query(url, auth, "CREATE TABLE more_notes (body TEXT)")
    assert refused.is_error
    assert refused.content[0].text.startswith("Refused (not granted by the token's scopes)"), refused
    allowed = await query(url, auth, "SELECT COUNT(*) FROM orders")
    assert allowed.structured_content["rows"] == [[200]]


def token_endpoint_token(issuer: str, client: str, scope: str, resource: str | None) -> str:
    data = {"grant_type": "client_credentials", "scope": scope}
    if resource:
        data["resource"] = resource
    r = httpx2.post(f"{issuer}/token", data=data, auth=(client, client + SECRET))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def signed(issuer: str, url: str, key: str = "key_a.pem", kid: str = "a", **change) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": url, "sub": "writer", "client_id": "writer",
              "exp": now + 300, "iat": now, "scope": "mcp:read mcp:write", **change}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, (KEYS / key).read_text(), algorithm="ES256",
                      headers={"kid": kid, "typ": "at+jwt"})


def b64(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def post(url: str, token: str | None):
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "0"}}}
    return httpx2.post(url, json=body, headers=headers)


def test_bad_tokens_are_refused_with_the_right_status_and_challenge(setup):
    url, issuer = setup
    metadata = url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
    r = post(url, None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata}", scope="mcp:read"'
    doc = httpx2.get(metadata).json()
    assert doc["resource"] == url and doc["authorization_servers"] == [issuer]
    # What the provider issues for us is taken.
    good = token_endpoint_token(issuer, "writer", "mcp:read", url)
    assert post(url, good).status_code == 200
    now = int(time.time())
    cases = {
        "expired": signed(issuer, url, exp=now - 600),
        "another audience": signed(issuer, url, aud="http://127.0.0.1:1/mcp"),
        "another issuer": signed(issuer, url, iss="http://127.0.0.1:1"),
        "an unknown key": signed(issuer, url, key="key_b.pem", kid="b"),
        "another key under a known kid": signed(issuer, url, key="key_b.pem", kid="a"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': 'a'})}.{b64({'iss': issuer, 'aud': url, 'sub': 'x', 'exp': now + 300, 'scope': 'mcp:read'})}.",
        "a token for another resource (opaque, no resource asked)": token_endpoint_token(issuer, "writer", "mcp:read", None),
    }
    for why, token in cases.items():
        r = post(url, token)
        assert r.status_code == 401, why
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"'), (why, challenge)
        assert f'resource_metadata="{metadata}"' in challenge, why
        assert token not in r.text, why
    # A good token without the required scope: 403 insufficient_scope.
    for token in (token_endpoint_token(issuer, "outsider", "other", url),
                  signed(issuer, url, scope="mcp:write")):
        r = post(url, token)
        assert r.status_code == 403
        challenge = r.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="mcp:read"' in challenge


async def test_key_rotation_at_the_provider_is_picked_up(tmp_path):
    port, provider_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    first = provider(resource, "a=key_a.pem", provider_port)
    issuer = first.__enter__()
    try:
        with daemon(tmp_path, port, issuer) as url:
            before = await query(url, sdk_auth(url, issuer, "reader", "mcp:read"), "SELECT 1 AS one")
            assert not before.is_error
            # The provider comes back at the same issuer signing with a new
            # key (b), still publishing the old one.
            first.__exit__(None, None, None)
            first = None
            with provider(resource, "b=key_b.pem,a=key_a.pem", provider_port) as again:
                assert again == issuer
                time.sleep(1.1)  # past the daemon's refetch interval (it fetched at start)
                token = token_endpoint_token(issuer, "reader", "mcp:read", resource)
                assert jwt.get_unverified_header(token)["kid"] == "b"
                assert post(url, token).status_code == 200
                after = await query(url, sdk_auth(url, issuer, "reader", "mcp:read"), "SELECT 2 AS two")
                assert after.structured_content["rows"] == [[2]]
    finally:
        if first is not None:
            first.__exit__(None, None, None)


def test_opaque_tokens_are_checked_by_introspection(tmp_path):
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with provider(resource, "a=key_a.pem") as issuer, daemon(tmp_path, port, issuer, introspect=True) as url:
        token = token_endpoint_token(issuer, "opaque", "mcp:read", url)
        assert token.count(".") == 0, "an opaque token"
        assert post(url, token).status_code == 200
        assert post(url, token).status_code == 200, "and again (from the cache)"
        for why, bad in {
            "for no resource": token_endpoint_token(issuer, "opaque", "mcp:read", None),
            "made up": "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eA",
        }.items():
            r = post(url, bad)
            assert r.status_code == 401, why
            assert 'error="invalid_token"' in r.headers["www-authenticate"], why
        # JWTs are still checked by signature.
        assert post(url, token_endpoint_token(issuer, "writer", "mcp:read", url)).status_code == 200


async def test_the_sdk_steps_up_for_a_tool_with_a_scope_of_its_own(tmp_path):
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with provider(resource, "a=key_a.pem") as issuer, daemon(
            tmp_path, port, issuer, extra=["--oauth-tool-scopes", "execute_query=mcp:sql"]) as url:
        # The SDK asks for mcp:read (the 401's scope); execute_query answers
        # 403 insufficient_scope naming mcp:sql; the SDK gets a token with
        # both and the call goes through.
        auth = sdk_auth(url, issuer, "stepper", "mcp:read")
        async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
                listed = await client.call_tool("list_databases", {})
                assert not listed.is_error, listed
                assert "mcp:sql" not in (auth.context.current_tokens.scope or "")
                result = await client.call_tool("execute_query", {"query": "SELECT 5 AS n"})
                assert result.structured_content["rows"] == [[5]], result
                assert "mcp:sql" in auth.context.current_tokens.scope
        doc = httpx2.get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")).json()
        assert "mcp:sql" in doc["scopes_supported"]


class Browser:
    """A person at the provider's login and consent pages, headless: follows
    the authorization URL's redirects, fills in each form (any name will do
    on oidc-provider's development pages), and stops at the redirect back
    to the client, whose code, state and iss it keeps."""

    def __init__(self, redirect_uri: str, user: str):
        self.redirect_uri = redirect_uri
        self.user = user
        self.result = None
        self.opened = ""

    async def open(self, authorization_url: str):
        self.opened = authorization_url
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            r = await browser.get(authorization_url)
            for _ in range(12):
                location = r.headers.get("location")
                if location and location.startswith(self.redirect_uri):
                    query = parse_qs(urlparse(location).query)
                    self.result = AuthorizationCodeResult(
                        code=query["code"][0], state=query["state"][0], iss=query.get("iss", [None])[0])
                    return
                if location:
                    r = await browser.get(urljoin(str(r.url), location))
                    continue
                action = re.search(r'<form[^>]*action="([^"]+)"', r.text)
                assert action, r.text[:500]
                fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text))
                if 'name="login"' in r.text:
                    fields.update(login=self.user, password="any")
                r = await browser.post(urljoin(str(r.url), action.group(1)), data=fields)
        raise AssertionError("never redirected back to the client")

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


async def test_the_authorization_code_flow_with_pkce(setup):
    url, issuer = setup
    redirect_uri = "http://127.0.0.1:1/callback"
    person = Browser(redirect_uri, "alice")
    metadata = OAuthClientMetadata(redirect_uris=[redirect_uri], client_name="pkce test",
                                   grant_types=["authorization_code"], response_types=["code"],
                                   token_endpoint_auth_method="none")
    auth = OAuthClientProvider(server_url=url, client_metadata=metadata, storage=Memory(),
                               redirect_handler=person.open, callback_handler=person.callback)
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            result = await client.call_tool("execute_query", {"query": "SELECT 9 AS n"})
            assert result.structured_content["rows"] == [[9]], result
    # The SDK registered itself, used PKCE (a public client: no secret),
    # and holds a token for this resource naming the person who logged in.
    assert "code_challenge_method=S256" in person.opened
    assert "resource=" in person.opened
    claims = jwt.decode(auth.context.current_tokens.access_token, options={"verify_signature": False})
    assert claims["sub"] == "alice"
    assert claims["aud"] == url
    assert auth.context.client_info.token_endpoint_auth_method == "none"
