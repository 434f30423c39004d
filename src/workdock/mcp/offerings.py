"""What a server offers besides tools: resources, resource templates and prompts.

Listed when a server connects and again on every ``list_changed`` (each kind to
its last page, like ``tools/list``). A server that does not declare a kind's
capability is not asked for it; one that declares it but fails to list it
offers none of that kind rather than failing the whole server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

logger = logging.getLogger(__name__)

MAX_PAGES = 1000  # a server whose cursor never ends cannot hang the listing

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class Offerings:
    resources: tuple[types.Resource, ...] = ()
    templates: tuple[types.ResourceTemplate, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()


async def paginate(
    list_page: Callable[[str | None], Awaitable[tuple[Sequence[_Item], str | None]]],
) -> tuple[_Item, ...]:
    """Every item of a paginated list: follow ``nextCursor`` until it ends (or repeats)."""
    items: list[_Item] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page, next_cursor = await list_page(cursor)
        items.extend(page)
        if not next_cursor or next_cursor == cursor:
            break
        cursor = next_cursor
    return tuple(items)


async def list_offerings(client: Client, server: str) -> Offerings:
    """The server's resources, templates and prompts, each kind only if its capability is declared."""
    session = client.session
    capabilities = session.server_capabilities or types.ServerCapabilities()

    async def resources(cursor: str | None) -> tuple[list[types.Resource], str | None]:
        page = await session.list_resources(params=types.PaginatedRequestParams(cursor=cursor))
        return page.resources, page.next_cursor

    async def templates(cursor: str | None) -> tuple[list[types.ResourceTemplate], str | None]:
        page = await session.list_resource_templates(params=types.PaginatedRequestParams(cursor=cursor))
        return page.resource_templates, page.next_cursor

    async def prompts(cursor: str | None) -> tuple[list[types.Prompt], str | None]:
        page = await session.list_prompts(params=types.PaginatedRequestParams(cursor=cursor))
        return page.prompts, page.next_cursor

    found = Offerings()
    if capabilities.resources is not None:
        found = Offerings(
            resources=await _or_none(server, "resources", paginate(resources)),
            templates=await _or_none(server, "resource templates", paginate(templates)),
        )
    if capabilities.prompts is not None:
        found = Offerings(
            found.resources, found.templates, await _or_none(server, "prompts", paginate(prompts))
        )
    return found


async def _or_none(server: str, what: str, listing: Awaitable[tuple[_Item, ...]]) -> tuple[_Item, ...]:
    # A protocol error (method not found, a bad page) costs that kind only; a lost connection
    # propagates: the owner task reconnects.
    try:
        return await listing
    except (MCPError, ValidationError) as exc:
        logger.warning("server %s: listing %s failed: %s", server, what, exc)
        return ()
