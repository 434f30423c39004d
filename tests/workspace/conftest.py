from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest

from support.workspace_app import TOKEN, WorkspaceServer, serve_workspace
from workdock.agent.workspace import ProcessTable
from workdock.agentapi import AgentClient


@pytest.fixture
def root(workspace_dir: Path) -> Path:
    """The workspace dir, under the name these tests give it."""
    return workspace_dir


@pytest.fixture
def server(root: Path) -> Iterator[WorkspaceServer]:
    # A short grace keeps the TERM-ignoring cases quick; the mechanism is the same at any length.
    with serve_workspace(root, ProcessTable(term_grace=1.0)) as running:
        yield running


@pytest.fixture
async def client(server: WorkspaceServer) -> AsyncIterator[AgentClient]:
    async with AgentClient(server.url, TOKEN) as agent:
        yield agent


@pytest.fixture
async def http(server: WorkspaceServer) -> AsyncIterator[httpx2.AsyncClient]:
    """Raw HTTP with the token, for requests the typed client would never send."""
    async with httpx2.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as raw:
        yield raw
