"""The catalog's resources, templates and prompts, and the routes that reach them.

Prompts are offered as ``<server>__<prompt>`` by the tools' naming rules.
Resources keep their own URIs (a URI means something to its server) and get an
offered id, ``<server>__<uri>`` made LLM-safe and unique, that routes to the
server offering it, so two servers may list the same URI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import mcp_types as types

from workdock.mcp import naming
from workdock.mcp.connection import Connection, HubError, ToolNotFound


@dataclass(frozen=True)
class CatalogResource:
    server: str
    id: str  # offered like a tool name, "<server>__<uri>" made safe and unique: routes to it
    resource: types.Resource  # its URI is the server's own


@dataclass(frozen=True)
class CatalogTemplate:
    server: str
    template: types.ResourceTemplate


@dataclass(frozen=True)
class CatalogPrompt:
    server: str
    name: str  # the offered name, "<server>__<prompt>", by the tools' naming rules
    original_name: str
    prompt: types.Prompt


class AmbiguousResource(HubError):
    status = 400


def _template_pattern(template: str) -> re.Pattern[str]:
    """An RFC 6570 template as a regex: each ``{...}`` matches any text (enough to pick a server)."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile(".*".join(re.escape(part) for part in parts), re.DOTALL)


@dataclass
class OfferedRoutes:
    resources: list[CatalogResource] = field(default_factory=list)  # every connected server's
    templates: list[CatalogTemplate] = field(default_factory=list)
    prompts: dict[str, tuple[CatalogPrompt, Connection]] = field(default_factory=dict)
    ready: frozenset[str] = frozenset()

    def listed(
        self,
    ) -> tuple[tuple[CatalogResource, ...], tuple[CatalogTemplate, ...], tuple[CatalogPrompt, ...]]:
        """What the catalog lists: the ready servers' resources, templates and prompts, sorted."""
        resources = sorted(
            (r for r in self.resources if r.server in self.ready), key=lambda r: (r.resource.uri, r.server)
        )
        templates = sorted(
            (t for t in self.templates if t.server in self.ready),
            key=lambda t: (t.server, t.template.uri_template),
        )
        prompts = sorted(
            (p for p, _ in self.prompts.values() if p.server in self.ready), key=lambda p: p.name
        )
        return tuple(resources), tuple(templates), tuple(prompts)

    def resource_route(
        self, uri: str, server: str | None, connections: Mapping[str, Connection]
    ) -> Connection:
        """The server to read ``uri`` from: the one named, else the one server that lists it (by URI
        or offered id), else the one whose template it fits."""
        if server is not None:
            if server not in connections:
                raise ToolNotFound(f"no server named {server!r}")
            return connections[server]
        by_id = [r.server for r in self.resources if r.id == uri]
        servers = sorted({r.server for r in self.resources if r.resource.uri == uri}) or by_id
        if not servers:
            servers = sorted(
                {
                    t.server
                    for t in self.templates
                    if _template_pattern(t.template.uri_template).fullmatch(uri)
                }
            )
        if not servers:
            raise ToolNotFound(f"no resource {uri!r} in the catalog (name its server to read it anyway)")
        if len(servers) > 1:
            raise AmbiguousResource(f"resource {uri!r} is offered by {', '.join(servers)}: name the server")
        return connections[servers[0]]

    def resource_uri(self, uri_or_id: str) -> str:
        """The server's own URI for an offered id (a URI is returned as it is)."""
        return next((r.resource.uri for r in self.resources if r.id == uri_or_id), uri_or_id)


def offer_offerings(connections: Sequence[Connection], warnings: dict[str, list[str]]) -> OfferedRoutes:
    """Name and route every connected server's offerings; prompt renamings go into ``warnings``."""
    known = [c for c in connections if c.spec is not None]
    routes = OfferedRoutes(ready=frozenset(c.name for c in known if c.state == "ready"))
    taken: set[str] = set()
    pairs = sorted({(c.name, r.uri): (c, r) for c in known for r in c.offerings.resources}.items())
    for (server, uri), (_connection, resource) in pairs:
        identity = f"{server}{naming.SEPARATOR}{uri}"
        offered = naming.claim(identity, identity, taken)
        routes.resources.append(CatalogResource(server, offered, resource))
    routes.templates = [CatalogTemplate(c.name, t) for c in known for t in c.offerings.templates]
    prompts = {(c.name, p.name): (c, p) for c in known for p in c.offerings.prompts}
    for item in naming.offer(prompts.keys(), kind="prompt"):
        connection, prompt = prompts[(item.server, item.original)]
        routes.prompts[item.offered] = (
            CatalogPrompt(item.server, item.offered, item.original, prompt),
            connection,
        )
        if item.warning:
            warnings.setdefault(item.server, []).append(item.warning)
    return routes
