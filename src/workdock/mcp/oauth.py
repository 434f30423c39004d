"""Sign-in to MCP servers that want OAuth: the SDK's flow, sealed storage, and the code's hand-over.

The flow itself (a 401 with ``WWW-Authenticate``, protected-resource and authorization-server
metadata, dynamic registration or a pre-registered client, authorization code with PKCE and
``resource``, refresh) is the ``mcp`` SDK's :class:`OAuthClientProvider`. What is ours:

- :class:`Vault`: where each server's tokens and client registration are kept, sealed with the
  project's secrets-at-rest cipher and bound to the server's URL: :class:`TokenVault` is the
  agent's (one 0600 file per server); the chat server keeps each user's in its database;
- :class:`SignIn`: the person in the middle. The SDK asks it to show the authorization URL and
  then waits on it for the code; the code arrives later through the agent's API (from
  ``workdock auth``'s loopback callback or the chat server's), and the ``state`` it comes with is
  checked against the one in the URL before the SDK checks it again. Whoever finishes the sign-in
  first starts it again with their own redirect URI (:meth:`SignIn.restart`): the SDK's flow
  begins anew, with a fresh state and PKCE verifier, registering the client again where its
  registration lacks that URI;
- :func:`revoke`: RFC 7009 revocation when a server is removed (the SDK has none).

The PKCE verifier and ``state`` never leave the process that started the flow.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
import warnings
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import orjson
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthRegistrationError, OAuthTokenError
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.auth.utils import is_valid_client_metadata_url
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import AnyUrl, ValidationError

from workdock import __version__
from workdock.mcp.config import OAuthSettings
from workdock.mcp.http import explain_status
from workdock.secretbox import SecretBox, SecretKeyError, key_from_env, load_key

logger = logging.getLogger(__name__)

# The loopback redirect URI the agent registers: `workdock auth` listens there. A fixed default
# port, since a dynamically registered client is bound to its redirect URI.
DEFAULT_CALLBACK_PORT = 4574
CALLBACK_PATH = "/callback"
# A token is refreshed this long before it expires (at most a tenth of its life), not after a 401.
REFRESH_MARGIN = 60.0
REVOKE_TIMEOUT = 10.0
RESTART_TIMEOUT = 30.0  # a restarted sign-in: discovery and registration until its new URL
MAX_REDIRECT_URI = 2048
CLIENT_METADATA_URL_ENV = "WORKDOCK_OAUTH_CLIENT_METADATA_URL"
MAX_RECORD_BYTES = 256 * 1024  # a stored record is a few kilobytes; a larger file is not ours


def client_metadata_url(settings: OAuthSettings | None) -> str | None:
    """The entry's URL-based client ID, else the agent's default (``WORKDOCK_OAUTH_CLIENT_METADATA_URL``)
    for servers with no pre-registered client; a default that is not a valid one is ignored."""
    if settings is not None and settings.client_id:
        return None
    if settings is not None and settings.client_metadata_url:
        return settings.client_metadata_url
    default = os.environ.get(CLIENT_METADATA_URL_ENV, "").strip() or None
    if default is not None and not is_valid_client_metadata_url(default):
        logger.warning("%s is not an https URL with a path; it is ignored", CLIENT_METADATA_URL_ENV)
        return None
    return default


def redirect_uri(settings: OAuthSettings | None) -> str:
    if settings is not None and settings.redirect_uri:
        return settings.redirect_uri
    port = settings.callback_port if settings and settings.callback_port else DEFAULT_CALLBACK_PORT
    return f"http://127.0.0.1:{port}{CALLBACK_PATH}"


def check_redirect_uri(uri: str) -> str | None:
    """Why ``uri`` cannot be a sign-in's redirect URI, or None: absolute http(s), no fragment."""
    if len(uri) > MAX_REDIRECT_URI:
        return f"longer than {MAX_REDIRECT_URI} characters"
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an absolute http or https URL"
    if parts.fragment:
        return "a redirect URI has no fragment (RFC 6749 §3.1.2)"
    return None


class SignInRestart(Exception):
    """Raised into the SDK's flow waiting for a code: begin again, redirecting to ``redirect_uri``
    (None: the config's loopback one)."""

    def __init__(self, redirect_uri: str | None) -> None:
        super().__init__("the sign-in was started again")
        self.redirect_uri = redirect_uri


class _QuietRestart(logging.Filter):
    """The SDK logs every exception out of its flow with a traceback; a restart is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], SignInRestart))


logging.getLogger("mcp.client.auth.oauth2").addFilter(_QuietRestart())


class SignInError(Exception):
    """A code handed over that cannot finish a sign-in; ``status`` is the agent API's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Vault(Protocol):
    """Sign-in records by server name (tokens, client registration, revocation endpoint)."""

    async def read(self, name: str) -> dict[str, Any] | None: ...

    async def write(self, name: str, record: dict[str, Any]) -> None: ...

    async def remove(self, name: str) -> None: ...


class TokenVault:
    """Sealed per-server records in one directory (created 0700; files 0600, replaced atomically)."""

    def __init__(self, directory: Path, key_dir: Path) -> None:
        self.directory = directory
        self._key_dir = key_dir
        self._box: SecretBox | None = None

    def _cipher(self) -> SecretBox:
        # Made on first use: an agent whose servers never ask for sign-in writes no key.
        if self._box is None:
            self._key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._box = load_key(self._key_dir, key_from_env()).box
        return self._box

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    async def read(self, name: str) -> dict[str, Any] | None:
        path = self._path(name)
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                logger.warning("server %s: stored sign-in is too large; ignored", name)
                return None
            sealed = path.read_text()
        except FileNotFoundError:
            return None
        try:
            record = orjson.loads(self._cipher().open(sealed.strip()))
        except (SecretKeyError, orjson.JSONDecodeError) as exc:
            logger.warning("server %s: stored sign-in cannot be read (%s); signing in again", name, exc)
            return None
        return record if isinstance(record, dict) else None

    async def write(self, name: str, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        sealed = self._cipher().seal(orjson.dumps(record).decode())
        temporary = self.directory / f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(sealed + "\n")
        os.replace(temporary, self._path(name))

    async def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


class ServerTokens:
    """The SDK's ``TokenStorage`` for one server: its slice of the vault, valid for its URL only."""

    def __init__(self, vault: Vault, name: str, server_url: str, settings: OAuthSettings | None) -> None:
        self.vault = vault
        self.name = name
        self.server_url = server_url
        self.settings = settings
        self.revocation_endpoint: Callable[[], str | None] = lambda: None

    async def _record(self) -> dict[str, Any]:
        record = await self.vault.read(self.name)
        return record if record is not None and record.get("server_url") == self.server_url else {}

    async def _update(self, **fields: Any) -> None:
        record = await self._record() or {"server_url": self.server_url}
        record.update(fields)
        if endpoint := self.revocation_endpoint():
            record["revocation_endpoint"] = endpoint
        await self.vault.write(self.name, record)

    async def expires_at(self) -> float | None:
        value = (await self._record()).get("expires_at")
        return float(value) if isinstance(value, int | float) else None

    async def get_tokens(self) -> OAuthToken | None:
        raw = (await self._record()).get("tokens")
        try:
            return OAuthToken.model_validate(raw) if raw else None
        except ValidationError:
            return None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        expires_at = time.time() + int(tokens.expires_in) if tokens.expires_in is not None else None
        await self._update(tokens=tokens.model_dump(mode="json", exclude_none=True), expires_at=expires_at)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        settings = self.settings
        if settings is not None and settings.client_id:
            # Pre-registered (the config's `oauth.clientId`): never registered, never stored.
            return OAuthClientInformationFull(
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                redirect_uris=[AnyUrl(redirect_uri(settings))],
                token_endpoint_auth_method="client_secret_basic" if settings.client_secret else "none",
            )
        raw = (await self._record()).get("client")
        try:
            return OAuthClientInformationFull.model_validate(raw) if raw else None
        except ValidationError:
            return None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._update(client=client_info.model_dump(mode="json", exclude_none=True))

    async def forget_client(self) -> None:
        record = await self._record()
        if record.pop("client", None) is not None:
            await self.vault.write(self.name, record)


class SignIn:
    """The authorization URL waiting for a person, and the code they bring back."""

    def __init__(self, on_url: Callable[[str | None], None]) -> None:
        self._on_url = on_url
        self.authorization_url: str | None = None
        self._state: str | None = None
        self._received: anyio.Event | None = None
        self._result: AuthorizationCodeResult | None = None
        # A restart asked for (its redirect URI, None for the default) and its waiters: woken by
        # the next URL, or by the flow failing (``_failure``).
        self._restart: tuple[str | None] | None = None
        self._published = anyio.Event()
        self._failure: str | None = None

    async def redirect(self, url: str) -> None:
        """The SDK's ``redirect_handler``: publish the URL (status, UI, ``workdock auth``)."""
        self.authorization_url = url
        states = parse_qs(urlsplit(url).query).get("state") or []
        self._state = states[0] if states else None
        self._received = anyio.Event()
        self._result = None
        self._restart, self._failure = None, None
        self._published.set()
        self._on_url(url)

    async def callback(self) -> AuthorizationCodeResult:
        """The SDK's ``callback_handler``: wait, for as long as it takes, for the code (or a restart)."""
        assert self._received is not None, "redirect comes first"
        await self._received.wait()
        if self._restart is not None:
            # The state stays needs_auth: the flow starts over and publishes its next URL.
            self.authorization_url, self._state, self._received = None, None, None
            raise SignInRestart(self._restart[0])
        assert self._result is not None
        result = self._result
        self.authorization_url, self._state, self._received, self._result = None, None, None, None
        self._on_url(None)
        return result

    def deliver(self, code: str, state: str, iss: str | None = None) -> None:
        if self._restart is not None:
            raise SignInError(409, "this sign-in was started again: use its new link")
        if self._received is None or self._state is None:
            raise SignInError(409, "no sign-in is waiting for this server")
        if not secrets.compare_digest(state.encode(), self._state.encode()):
            raise SignInError(400, "the state does not match the sign-in in progress (an old or forged link)")
        self._result = AuthorizationCodeResult(code=code, state=state, iss=iss)
        self._received.set()

    async def restart(self, redirect_uri: str | None, timeout: float = RESTART_TIMEOUT) -> str:
        """Start the waiting sign-in again for ``redirect_uri``; its new authorization URL. The
        old URL's state is void from now on (its code is refused), whoever holds it."""
        if self._restart is None:
            if self._received is None or self._state is None:
                raise SignInError(409, "no sign-in is waiting for this server")
            self._published = anyio.Event()
            self._received.set()
        self._restart = (redirect_uri,)  # a second caller's URI wins; both get the one URL
        published = self._published
        with anyio.move_on_after(timeout):
            await published.wait()
        if self._failure is not None:
            raise SignInError(502, f"signing in again did not work: {self._failure}")
        if not published.is_set() or self.authorization_url is None:
            raise SignInError(504, f"the server did not ask for sign-in again within {timeout:g} s")
        return self.authorization_url

    def failed(self, reason: str) -> None:
        """The flow ended in an error: a restart waiting for its URL hears why."""
        if self._restart is not None:
            self._restart, self._failure = None, reason
            self._published.set()


class _ConfiguredScope(OAuthClientMetadata):
    """Client metadata with the scopes the config names: the SDK's scope selection (from the 401's
    challenge or the server's metadata) would replace them; what was configured is asked for."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "scope":
            super().__setattr__(name, value)


class Provider(OAuthClientProvider):
    """The SDK's provider, with the expiry kept across restarts and a refresh before it is reached."""

    def __init__(self, storage: ServerTokens, sign_in: SignIn) -> None:
        settings = storage.settings
        metadata = _ConfiguredScope if settings and settings.scopes else OAuthClientMetadata
        super().__init__(
            server_url=storage.server_url,
            client_metadata=metadata(
                client_name="workdock",
                software_id="workdock",
                software_version=__version__,
                redirect_uris=[AnyUrl(redirect_uri(settings))],
                scope=" ".join(settings.scopes) if settings and settings.scopes else None,
                grant_types=["authorization_code", "refresh_token"],
            ),
            storage=storage,
            redirect_handler=sign_in.redirect,
            callback_handler=sign_in.callback,
            client_metadata_url=client_metadata_url(settings),
        )
        self._tokens = storage
        self._sign_in = sign_in
        # The SDK's flow holds this lock across the request it authenticates; a streaming request
        # closed from another task (a session torn down on reconnect) releases it there, which an
        # anyio lock refuses, leaving it held for good and every later request waiting on it.
        # asyncio's lock has no owner to check.
        self.context.lock = asyncio.Lock()  # type: ignore[assignment]

        def revocation_endpoint() -> str | None:
            metadata = self.context.oauth_metadata
            return str(metadata.revocation_endpoint) if metadata and metadata.revocation_endpoint else None

        storage.revocation_endpoint = revocation_endpoint

    async def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow, begun again on a restart, with its failures said as what they mean for
        the user: the server wants credentials, and signing in did not work (a 401 from a server
        that does no OAuth, say)."""
        while True:
            flow = _said_plainly(super()._auth_flow(request), request, "OAuth", self._sign_in.failed)
            try:
                outgoing = await flow.__anext__()
                while True:
                    outgoing = await flow.asend((yield outgoing))
            except StopAsyncIteration:
                return
            except SignInRestart as restart:
                await self._use_redirect(restart.redirect_uri)
                continue  # the same request again: its 401 leads to a fresh authorization URL

    async def _use_redirect(self, uri: str | None) -> None:
        """Redirect the next authorization to ``uri`` (None: the loopback one). A registered client
        whose redirect URIs lack it is dropped, so the flow registers one with both."""
        default = redirect_uri(self._tokens.settings)
        wanted = [AnyUrl(u) for u in dict.fromkeys([uri or default, default])]
        self.context.client_metadata.redirect_uris = wanted
        settings = self._tokens.settings
        client = self.context.client_info
        if client is None or (settings is not None and settings.client_id):
            return  # a pre-registered client's redirect URIs are the provider's business
        if str(wanted[0]) not in {str(u) for u in client.redirect_uris or []}:
            self.context.client_info = None
            await self._tokens.forget_client()

    def _refresh_early(self, expires_at: float | None, lifetime: float | None) -> None:
        if expires_at is None:
            self.context.token_expiry_time = None
            return
        margin = min(REFRESH_MARGIN, lifetime / 10) if lifetime else 0.0
        self.context.token_expiry_time = expires_at - margin

    async def _initialize(self) -> None:
        await super()._initialize()
        # The SDK forgets when a stored token expires; without this a restarted agent would use an
        # expired token until a 401, and then sign in again instead of refreshing.
        tokens = self.context.current_tokens
        self._refresh_early(await self._tokens.expires_at(), tokens.expires_in if tokens else None)

    async def _handle_token_response(self, response: httpx2.Response) -> None:
        await super()._handle_token_response(response)
        self._after_new_tokens()

    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        refreshed = await super()._handle_refresh_response(response)
        if refreshed:
            logger.info("server %s: access token refreshed", self._tokens.name)
            self._after_new_tokens()
        return refreshed

    def _after_new_tokens(self) -> None:
        tokens = self.context.current_tokens
        if tokens is not None and tokens.expires_in is not None:
            self._refresh_early(time.time() + int(tokens.expires_in), float(tokens.expires_in))


async def _said_plainly(
    flow: AsyncGenerator[httpx2.Request, httpx2.Response],
    request: httpx2.Request,
    how: str,
    on_failure: Callable[[str], None] | None = None,
) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
    """An SDK flow whose failures say what they mean for the user: the server wants credentials,
    and signing in (``how``) did not work (a 401 from a server that does no OAuth, say)."""
    refused: httpx2.Response | None = None
    try:
        outgoing = await flow.__anext__()
        while True:
            response = yield outgoing
            if outgoing is request and response.status_code in (401, 403):
                refused = response
            outgoing = await flow.asend(response)
    except StopAsyncIteration:
        return
    except (OAuthFlowError, OAuthRegistrationError, OAuthTokenError, ValidationError) as exc:
        what = (
            explain_status(refused.status_code, refused.reason_phrase, request.method, request.url)
            if refused is not None
            else "the server wants credentials"
        )
        if on_failure is not None:
            on_failure(_reason(exc))
        raise OAuthFlowError(f"{what}; signing in with {how} did not work: {_reason(exc)}") from exc
    finally:
        await flow.aclose()


class _ClientCredentials(ClientCredentialsOAuthProvider):
    def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        return _said_plainly(super()._auth_flow(request), request, "client credentials")


class _PrivateKeyJWT(PrivateKeyJWTOAuthProvider):
    def _auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        return _said_plainly(super()._auth_flow(request), request, "client credentials (a signed JWT)")


def provider_for(storage: ServerTokens, sign_in: SignIn) -> OAuthClientProvider:
    """The SDK provider a server's ``oauth`` settings call for: a person signing in (the
    authorization code flow), or the client signing in as itself (client credentials)."""
    settings = storage.settings
    if settings is None or settings.grant != "client_credentials":
        return Provider(storage, sign_in)
    assert settings.client_id is not None  # the config requires it for this grant
    scope = " ".join(settings.scopes) if settings.scopes else None
    machine: OAuthClientProvider
    with warnings.catch_warnings():
        # Without an issuer the SDK warns that the MCP server picks where the credentials go;
        # the README says so, and the agent logs it once per connection instead.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        if settings.private_key is not None:
            assertion = SignedJWTParameters(
                issuer=settings.client_id,
                subject=settings.client_id,
                signing_key=settings.private_key,
                signing_algorithm=settings.signing_algorithm,
            ).create_assertion_provider()
            machine = _PrivateKeyJWT(
                storage.server_url, storage, settings.client_id, assertion, scope, settings.issuer
            )
        else:
            assert settings.client_secret is not None
            machine = _ClientCredentials(
                storage.server_url,
                storage,
                settings.client_id,
                settings.client_secret,
                settings.token_endpoint_auth,
                scope,
                settings.issuer,
            )
    if settings.issuer is None:
        logger.warning(
            "server %s: oauth.issuer is not set, so the client's credentials go to whichever "
            "authorization server the MCP server names; set it to pin them to yours",
            storage.name,
        )
    machine.context.lock = asyncio.Lock()  # type: ignore[assignment]  # as in Provider
    return machine


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


async def revoke(vault: Vault, name: str, settings: OAuthSettings | None) -> None:
    """Forget a removed server's sign-in: revoke its tokens where the server says how (RFC 7009)."""
    record = await vault.read(name)
    await vault.remove(name)
    if not record:
        return
    endpoint = record.get("revocation_endpoint")
    tokens = record.get("tokens") or {}
    if not isinstance(endpoint, str) or not isinstance(tokens, dict):
        logger.info("server %s: sign-in forgotten (the server offers no revocation)", name)
        return
    client = record.get("client") or {}
    client_id = settings.client_id if settings and settings.client_id else client.get("client_id")
    secret = settings.client_secret if settings and settings.client_id else client.get("client_secret")
    basic = secret is not None and client.get("token_endpoint_auth_method") != "client_secret_post"
    async with httpx2.AsyncClient(timeout=REVOKE_TIMEOUT, follow_redirects=False) as http:
        for hint in ("refresh_token", "access_token"):
            token = tokens.get(hint)
            if not isinstance(token, str):
                continue
            data = {"token": token, "token_type_hint": hint}
            auth: httpx2.Auth | None = None
            if basic and client_id and secret:
                auth = httpx2.BasicAuth(client_id, secret)
            elif client_id:
                data["client_id"] = client_id
                if secret:
                    data["client_secret"] = secret
            try:
                response = await (
                    http.post(endpoint, data=data, auth=auth) if auth else http.post(endpoint, data=data)
                )
                outcome = f"answered {response.status_code}"
            except httpx2.HTTPError as exc:
                outcome = f"failed: {type(exc).__name__}"
            logger.info("server %s: revoking the %s %s", name, hint.replace("_", " "), outcome)
