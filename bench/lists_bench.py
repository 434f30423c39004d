"""The list endpoints at scale, through a real `workdock server` process over HTTP:

- ``GET /workspaces`` with 50 workspaces, 10 of whose agents take the connection and never
  answer (the other 40 share one real `workdock agent`), beside a direct call of that agent's
  ``GET /api/v0/mcp/servers`` (what one status costs);
- ``GET /chats`` with 10,000 chats, the first page and pages deep in the list (by cursor), beside
  ``GET /api/v0/me`` on the same server (the cheapest authenticated call).

Reported: p50 and p99 of each, and the ratio of the p50 to the direct call's. The statuses are
asked for back to back, so lists find cached statuses fresh at times and stale at others (then a
hung agent is checked again, and the list waits WAIT_S for it).

    python bench/lists_bench.py [--requests 200] [--chats 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/conftest.py imports its helpers as `support`

from tests.chat.conftest import ChatServer  # noqa: E402
from tests.support.agent import TOKEN, RunningAgent, write_config  # noqa: E402
from workdock.chat.store.db import create_engine, sqlite_url  # noqa: E402
from workdock.chat.store.models import Chat, utcnow  # noqa: E402
from workdock.chat.store.repo import new_id  # noqa: E402


class HungAgent:
    """Takes every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            while True:
                self.held.append(self.sock.accept()[0])
        except OSError:  # closed
            return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def timed(count: int, call: Callable[[], None]) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def line(label: str, values: list[float], direct: float | None, target: str) -> None:
    ratio = f"  {pct(values, 0.5) / direct:6.1f}x direct" if direct else ""
    print(f"  {label:34} p50 {pct(values, 0.5):7.2f} ms  p99 {pct(values, 0.99):7.2f} ms{ratio}  {target}")


async def seed_chats(db: Path, user_id: str, workspace_id: str, count: int) -> None:
    engine = create_engine(sqlite_url(db))
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "user_id": user_id,
            "workspace_id": workspace_id,
            "title": f"chat {i}",
            "status": "idle",
            "always_allow": [],
            "created_at": now - timedelta(seconds=count - i),
            "updated_at": now - timedelta(seconds=count - i),
        }
        for i in range(count)
    ]
    async with engine.begin() as conn:
        for start in range(0, count, 1000):
            await conn.execute(insert(Chat), rows[start : start + 1000])
    await engine.dispose()


def main(requests: int, chats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        (tmp / "ws").mkdir()
        write_config(tmp / "ws" / ".mcp.json", {})
        agent = RunningAgent(tmp / "ws", tmp / "agent.log")
        hung = [HungAgent() for _ in range(10)]
        server = ChatServer(tmp / "data", {"WORKDOCK_MODELS": ""}, subprocess_mode=True).start()
        try:
            http = httpx2.Client(
                base_url=server.url + "/api/v0",
                headers={"Authorization": f"Bearer {server.admin_token}"},
                timeout=30,
            )
            me = http.get("/me").json()
            for i in range(50):
                url = hung[i].url if i < 10 else agent.url
                body = {"name": f"w{i}", "agent_url": url, "agent_token": TOKEN}
                assert http.post("/workspaces", json=body).status_code == 201
            workspaces = http.get("/workspaces").json()["workspaces"]  # the first sees every agent once
            away = [w["agent"]["error"] for w in workspaces if not w["agent"]["reachable"]]
            assert len(away) == 10, away
            agent_http = httpx2.Client(base_url=agent.url, headers={"Authorization": f"Bearer {TOKEN}"})

            direct_agent = timed(requests, lambda: agent_http.get("/api/v0/mcp/servers").raise_for_status())
            listed = timed(requests, lambda: http.get("/workspaces").raise_for_status())
            print("GET /workspaces: 50 workspaces, 10 agents never answer")
            line("one agent's status, direct", direct_agent, None, "")
            line("GET /workspaces", listed, pct(direct_agent, 0.5), "target p50 <= 200 ms")

            asyncio.run(seed_chats(tmp / "data" / "workdock.db", me["id"], workspaces[0]["id"], chats))
            cursors = []
            cursor = None
            while True:  # walk them once: every page's cursor
                page = http.get("/chats", params={"cursor": cursor} if cursor else {}).json()
                cursor = page["next_cursor"]
                if cursor is None:
                    break
                cursors.append(cursor)
            pages = len(cursors) + 1
            deep = cursors[-10:]
            direct_me = timed(requests, lambda: http.get("/me").raise_for_status())
            first = timed(requests, lambda: http.get("/chats").raise_for_status())
            index = iter(range(10**9))
            deeper = timed(
                requests,
                lambda: http.get(
                    "/chats", params={"cursor": deep[next(index) % len(deep)]}
                ).raise_for_status(),
            )
            print(f"GET /chats: {chats} chats, {pages} pages of 50")
            line("GET /me, direct", direct_me, None, "")
            line("GET /chats (the first page)", first, pct(direct_me, 0.5), "target p50 <= 20 ms")
            line("GET /chats?cursor= (the last pages)", deeper, pct(direct_me, 0.5), "target p50 <= 20 ms")
            http.close()
            agent_http.close()
        finally:
            server.stop()
            agent.stop()
            for one in hung:
                one.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--chats", type=int, default=10_000)
    args = parser.parse_args()
    main(args.requests, args.chats)
