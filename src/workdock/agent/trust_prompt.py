"""Asking in the terminal which of a project's servers may start (``workdock up``, ``workdock agent``)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt

from workdock.agent.runtime import AgentSettings
from workdock.agent.trust import TrustStore, needs_approval
from workdock.mcp import config


def pending_entries(settings: AgentSettings) -> list[config.Entry]:
    """The project's entries that would wait for approval if the agent started now."""
    loaded = config.load(settings.config_paths, settings.child_env(), workspace=settings.workspace)
    approved = TrustStore(settings.trust_store).approved()
    project = settings.project_files
    return [e for e in loaded.entries if needs_approval(e, project, approved)]


def ask_for_approval(settings: AgentSettings, console: Console) -> list[str]:
    """Ask about each pending project server (yes, no, or all of its file); record what is approved.

    What is not approved stays ``pending_approval``: approvable later with ``workdock trust`` or
    the web UI.
    """
    pending = pending_entries(settings)
    if not pending:
        return []
    console.print(
        f"[bold]{len(pending)} project MCP server{'s' if len(pending) != 1 else ''} "
        "of this workspace ask to start[/] (a checkout's config can run any command):"
    )
    chosen: list[config.Entry] = []
    whole_files: set[str] = set()
    for entry in pending:
        if entry.config_file in whole_files:
            chosen.append(entry)
            continue
        launch = entry.origin.launch if entry.origin else ""
        console.print(f"  [bold]{escape(entry.name)}[/] from {escape(entry.config_file or '?')}")
        console.print(f"    {escape(launch)}", highlight=False)
        try:
            answer = Prompt.ask(
                "    start it? [y]es, [n]o, [a]ll from this file",
                choices=["y", "n", "a"],
                default="n",
                console=console,
                show_choices=False,
            )
        except EOFError:
            answer = "n"
        if answer == "a" and entry.config_file:
            whole_files.add(entry.config_file)
        if answer in ("y", "a"):
            chosen.append(entry)
    names = TrustStore(settings.trust_store).approve(chosen)
    left = len(pending) - len(names)
    if left:
        console.print(
            f"[yellow]{left} server{'s' if left != 1 else ''} left pending: approve later with "
            "`workdock trust NAME` or in the web UI (Workspaces)[/]"
        )
    return names
