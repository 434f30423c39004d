"""The ``oauth`` block of an http entry: a person's sign-in (the default) or a machine client's
client credentials, with a secret or a private key; what is wrong is said per entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workdock.mcp.config import Expansion, InvalidEntry, ServerSpec, parse_entry

PEM = "-----BEGIN PRIVATE KEY-----\nMIGH...\n-----END PRIVATE KEY-----\n"


def parsed(oauth: dict[str, Any], workspace: Path | None = None, **environ: str) -> ServerSpec | InvalidEntry:
    raw = {"type": "http", "url": "https://mcp.example.com/mcp", "oauth": oauth}
    entry = parse_entry("svc", raw, Expansion(environ, workspace=workspace))
    assert isinstance(entry, ServerSpec | InvalidEntry), entry
    return entry


def error_of(oauth: dict[str, Any], workspace: Path | None = None) -> str:
    entry = parsed(oauth, workspace)
    assert isinstance(entry, InvalidEntry), entry
    return entry.error


def test_a_client_secret_makes_a_client_credentials_client() -> None:
    spec = parsed(
        {
            "clientId": "bot",
            "clientSecret": "${env:BOT_SECRET}",
            "grantType": "client_credentials",
            "tokenEndpointAuthMethod": "client_secret_post",
            "issuer": "https://auth.example.com",
            "scopes": "a b",
        },
        BOT_SECRET="s3cret",
    )
    assert isinstance(spec, ServerSpec) and spec.oauth is not None
    oauth = spec.oauth
    assert (oauth.grant, oauth.client_id, oauth.client_secret) == ("client_credentials", "bot", "s3cret")
    assert (oauth.token_endpoint_auth, oauth.issuer, oauth.scopes) == (
        "client_secret_post",
        "https://auth.example.com",
        ("a", "b"),
    )
    assert oauth.private_key is None
    assert "s3cret" not in repr(spec)


def test_a_private_key_from_a_file_relative_to_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "bot.pem").write_text(PEM)
    spec = parsed(
        {
            "clientId": "bot",
            "grantType": "client_credentials",
            "privateKeyFile": "keys/bot.pem",
            "signingAlgorithm": "ES256",
        },
        tmp_path,
    )
    assert isinstance(spec, ServerSpec) and spec.oauth is not None
    assert (spec.oauth.private_key, spec.oauth.signing_algorithm) == (PEM, "ES256")
    assert "PRIVATE KEY" not in repr(spec)
    inline = parsed(
        {"clientId": "bot", "grantType": "client_credentials", "privateKey": "${env:PEM}"}, PEM=PEM
    )
    assert isinstance(inline, ServerSpec) and inline.oauth is not None
    assert (inline.oauth.private_key, inline.oauth.signing_algorithm) == (PEM, "RS256")


def test_a_person_signing_in_stays_the_default() -> None:
    spec = parsed({"clientId": "app", "clientSecret": "x"})
    assert isinstance(spec, ServerSpec) and spec.oauth is not None
    assert spec.oauth.grant == "authorization_code"


@pytest.mark.parametrize(
    ("oauth", "says"),
    [
        ({"grantType": "password"}, "'oauth.grantType' must be authorization_code or client_credentials"),
        (
            {"grantType": "client_credentials", "clientSecret": "x"},
            "'oauth.clientSecret' needs 'oauth.clientId'",
        ),
        ({"grantType": "client_credentials", "clientId": "bot"}, "needs exactly one of 'oauth.clientSecret'"),
        (
            {"grantType": "client_credentials", "clientId": "bot", "clientSecret": "x", "privateKey": PEM},
            "needs exactly one of 'oauth.clientSecret'",
        ),
        (
            {"grantType": "client_credentials", "clientId": "bot", "privateKey": PEM, "privateKeyFile": "/k"},
            "exclude each other",
        ),
        (
            {"clientId": "app", "privateKey": PEM},
            '\'oauth.privateKey\' needs "grantType": "client_credentials"',
        ),
        ({"clientId": "app", "issuer": "https://a"}, "'oauth.issuer' needs \"grantType\""),
        (
            {
                "grantType": "client_credentials",
                "clientId": "bot",
                "privateKey": PEM,
                "signingAlgorithm": "HS256",
            },
            "'oauth.signingAlgorithm' must be one of RS256",
        ),
        (
            {
                "grantType": "client_credentials",
                "clientId": "bot",
                "privateKey": PEM,
                "tokenEndpointAuthMethod": "client_secret_post",
            },
            "a private key always signs a JWT assertion",
        ),
        (
            {"grantType": "client_credentials", "clientId": "bot", "issuer": ""},
            "'oauth.issuer' must be a non-empty",
        ),
    ],
)
def test_what_is_wrong_is_said(oauth: dict[str, Any], says: str) -> None:
    assert says in error_of(oauth)


def test_a_key_file_that_cannot_be_read_or_is_too_big(tmp_path: Path) -> None:
    base = {"clientId": "bot", "grantType": "client_credentials"}
    missing = error_of({**base, "privateKeyFile": "none.pem"}, tmp_path)
    assert f"cannot read oauth.privateKeyFile {tmp_path}/none.pem: No such file or directory" in missing
    (tmp_path / "big.pem").write_bytes(b"x" * (64 * 1024 + 1))
    big = error_of({**base, "privateKeyFile": "big.pem"}, tmp_path)
    assert f"oauth.privateKeyFile {tmp_path}/big.pem is larger than 65536 bytes" in big


def test_a_url_based_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from workdock.mcp.oauth import CLIENT_METADATA_URL_ENV, client_metadata_url

    url = "https://example.com/oauth/workdock.json"
    spec = parsed({"clientMetadataUrl": url})
    assert isinstance(spec, ServerSpec) and spec.oauth is not None
    assert client_metadata_url(spec.oauth) == url
    assert "must be an https URL with a path" in error_of({"clientMetadataUrl": "http://example.com/a.json"})
    assert "must be an https URL with a path" in error_of({"clientMetadataUrl": "https://example.com"})
    assert "exclude each other" in error_of({"clientMetadataUrl": url, "clientId": "app"})
    # The agent's default applies to servers without a client of their own, and only a valid one.
    monkeypatch.setenv(CLIENT_METADATA_URL_ENV, "https://team.example.com/client.json")
    assert client_metadata_url(None) == "https://team.example.com/client.json"
    pre_registered = parsed({"clientId": "app"})
    assert isinstance(pre_registered, ServerSpec)
    assert client_metadata_url(pre_registered.oauth) is None
    monkeypatch.setenv(CLIENT_METADATA_URL_ENV, "not a url")
    assert client_metadata_url(None) is None
