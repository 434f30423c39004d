"""One tool set out of three sources: built-in names reserved, every offered name unique and LLM-safe."""

from __future__ import annotations

from dataclasses import replace

from workdock.chat.tools.base import Gathered, OfferedTool
from workdock.mcp.naming import claim


def merge(
    builtin: Gathered, admin: Gathered, workspace: Gathered
) -> tuple[dict[str, OfferedTool], list[str]]:
    """Offered tools by name, and a warning for each tool that had to be renamed.

    Priority is built-in, then admin, then workspace, so a workspace tool can never shadow a tool
    the admin set up, and renames are deterministic for the same inputs.
    """
    offered: dict[str, OfferedTool] = {}
    warnings: list[str] = []
    for tool in builtin.tools:
        offered[tool.name] = tool
    taken = set(offered)
    for gathered in (admin, workspace):
        for tool in sorted(gathered.tools, key=lambda t: t.name):
            name = claim(tool.name, f"{tool.source}:{tool.name}", taken)
            if name != tool.name:
                warnings.append(f"{tool.source} tool {tool.name!r} offered as {name!r}")
                tool = replace(tool, name=name)
            offered[name] = tool
    return offered, warnings
