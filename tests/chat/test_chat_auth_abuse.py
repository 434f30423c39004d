"""The chat server as an attacker meets it: guessing is answered 429, no secret reaches the log,
cookies are Secure behind TLS (and a forwarded header from anyone else changes nothing), no
third-party script is served."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx2
import pytest

from tests.chat.conftest import Api, ChatServer
from tests.support.helpers import wait_until_sync

pytestmark = pytest.mark.anyio


async def test_after_the_limit_of_failures_every_kind_of_guess_is_429(
    start_chat_server: Callable[..., ChatServer],
) -> None:
    server = start_chat_server(
        env={"WORKDOCK_AUTH_FAILURE_LIMIT": "4", "WORKDOCK_AUTH_FAILURE_WINDOW": "600"}
    )
    async with httpx2.AsyncClient(base_url=server.url) as http:
        # No credentials at all is not a guess: a fresh browser asks /me before it logs in.
        for _ in range(6):
            assert (await http.get("/api/v0/me")).status_code == 401
        guesses = [
            http.get("/api/v0/me", headers={"Authorization": "Bearer wd_guess"}),
            http.get("/api/v0/me", headers={"Cookie": "workdock_session=wd_guess"}),
            http.post("/api/v0/login", json={"code": "wdl_guess"}),
            http.get("/login", params={"code": "wdl_guess"}),
        ]
        assert [(await g).status_code for g in guesses] == [401, 401, 401, 401]
        for attempt in (
            http.get("/api/v0/me", headers={"Authorization": f"Bearer {server.admin_token}"}),
            http.post("/api/v0/login", json={"code": "wdl_guess"}),
            http.get("/login", params={"code": "wdl_guess"}),
            http.get("/api/v0/chats", headers={"Cookie": "workdock_session=wd_guess"}),
        ):
            blocked = await attempt
            assert blocked.status_code == 429  # the right token too: a guesser is told nothing
            assert int(blocked.headers["retry-after"]) > 500
            assert set(blocked.json()) == {"message", "detail"} and "try again" in blocked.json()["detail"]


async def test_behind_a_trusted_proxy_failures_count_for_the_forwarded_address(
    start_chat_server: Callable[..., ChatServer],
) -> None:
    server = start_chat_server(
        env={"WORKDOCK_AUTH_FAILURE_LIMIT": "2", "WORKDOCK_TRUSTED_PROXIES": "127.0.0.1"},
        subprocess_mode=True,
    )
    async with httpx2.AsyncClient(base_url=server.url) as http:

        async def guess(client: str) -> int:
            headers = {"Authorization": "Bearer wd_guess", "X-Forwarded-For": client}
            return (await http.get("/api/v0/me", headers=headers)).status_code

        assert [await guess("203.0.113.5") for _ in range(3)] == [401, 401, 429]
        assert await guess("203.0.113.6") == 401  # another client behind the same proxy


async def test_forwarded_headers_from_an_untrusted_peer_change_nothing(
    start_chat_server: Callable[..., ChatServer],
) -> None:
    # A proxy is configured, but the requests come from 127.0.0.1, which is not it.
    server = start_chat_server(
        env={"WORKDOCK_AUTH_FAILURE_LIMIT": "2", "WORKDOCK_TRUSTED_PROXIES": "192.0.2.1"},
        subprocess_mode=True,
    )
    async with httpx2.AsyncClient(base_url=server.url) as http:
        codes = [
            (
                await http.get(
                    "/api/v0/me",
                    headers={"Authorization": "Bearer wd_guess", "X-Forwarded-For": f"203.0.113.{n}"},
                )
            ).status_code
            for n in range(3)
        ]
        assert codes == [401, 401, 429]  # all counted for the real peer
        me = await http.get("/api/v0/me", headers={"Authorization": f"Bearer {server.admin_token}"})
        assert me.status_code == 429  # blocked as well


async def _session_cookie(server: ChatServer, **headers: str) -> str:
    api = Api(server.url, server.admin_token)
    try:
        me = await api.get("/me")
        url = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
    finally:
        await api.aclose()
    code = url.split("code=", 1)[1]
    async with httpx2.AsyncClient(base_url=server.url) as browser:
        answer = await browser.post("/api/v0/login", json={"code": code}, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.headers["set-cookie"]


async def test_the_session_cookie_is_secure_behind_tls(start_chat_server: Callable[..., ChatServer]) -> None:
    plain = start_chat_server(subprocess_mode=True)
    # Without a trusted proxy, a forwarded scheme is not believed (uvicorn alone trusts 127.0.0.1).
    assert "secure" not in (await _session_cookie(plain, **{"X-Forwarded-Proto": "https"})).lower()
    plain.stop()

    proxied = start_chat_server(subprocess_mode=True, env={"WORKDOCK_TRUSTED_PROXIES": "127.0.0.1"})
    assert "secure" not in (await _session_cookie(proxied)).lower()
    assert "; secure" in (await _session_cookie(proxied, **{"X-Forwarded-Proto": "https"})).lower()
    proxied.stop()

    public = start_chat_server(subprocess_mode=True, env={"WORKDOCK_PUBLIC_URL": "https://chat.example.com"})
    assert "; secure" in (await _session_cookie(public)).lower()


async def test_schemes_are_case_insensitive(chat_server: ChatServer) -> None:
    async with httpx2.AsyncClient(base_url=chat_server.url) as http:
        for scheme in ("bearer", "BEARER", "Bearer"):
            answer = await http.get(
                "/api/v0/me", headers={"Authorization": f"{scheme} {chat_server.admin_token}"}
            )
            assert answer.status_code == 200, scheme


async def test_no_secret_reaches_the_log(start_chat_server: Callable[..., ChatServer]) -> None:
    server = start_chat_server(subprocess_mode=True)  # `workdock server`: INFO, with the access log
    api = Api(server.url, server.admin_token)
    try:
        me = await api.get("/me")
        used = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
        fresh = (await api.post(f"/users/{me['id']}/login-url"))["login_url"]
    finally:
        await api.aclose()
    secrets = [used.split("code=")[1], fresh.split("code=")[1], server.admin_token]
    async with httpx2.AsyncClient(base_url=server.url) as browser:
        assert (await browser.get(used)).status_code == 303
        assert (await browser.get(used)).status_code == 401
        await browser.get(f"/api/v0/me?token={server.admin_token}")
        await browser.get("/api/v0/me", headers={"Authorization": f"Bearer {server.admin_token}"})
        await browser.get(f"/login?other=1&code={fresh.split('code=')[1]}&next=/")
    log = wait_until_sync(
        lambda: (text := server.log_path.read_text()).count("GET /login?") >= 3 and text,
        message="the access log lines",
    )
    assert re.search(r'"GET /login\?code=\[redacted\] HTTP/1\.1" 303', log), log
    assert "/api/v0/me?token=[redacted]" in log
    for secret in secrets:
        assert secret not in log


async def test_no_third_party_script_is_served(chat_server: ChatServer) -> None:
    async with httpx2.AsyncClient(base_url=chat_server.url) as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/redoc")).status_code == 404
        document = await http.get("/openapi.json")
        assert document.status_code == 200 and document.json()["info"]["title"] == "workdock chat server"
        index = (await http.get("/")).text
        assert not re.search(r"<script[^>]+src=\"(https?:)?//", index)


async def test_the_openapi_document_tells_the_truth(chat_server: ChatServer) -> None:
    async with httpx2.AsyncClient(base_url=chat_server.url) as http:
        document = (await http.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyCookie"] == {**schemes["APIKeyCookie"], "in": "cookie", "name": "workdock_session"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            success = next(code for code in responses if code.startswith("2"))
            if success != "204" and not path.endswith("/stream"):
                schema = responses[success]["content"]["application/json"]["schema"]
                assert "$ref" in schema, (method, path, schema)
            if path.startswith("/api/v0/") and path != "/api/v0/login":
                assert {"HTTPBearer": []} in operation["security"], (method, path)
                assert {"400", "401", "429", "503"} <= set(responses), (method, path)
    assert {"403", "409", "413", "507"} <= set(document["paths"]["/api/v0/users"]["post"]["responses"])
