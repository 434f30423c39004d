"""Where each linked workspace's agent is connected, for every replica of the service (the
link registry's directory, link/registry.py).

A row per workspace (``agent_links``) says which replica holds its link and what is known of it.
Each replica keeps a copy in memory, re-read when ``LINKS`` names the workspace (a link came or
went, a token was replaced, a workspace deleted) and on resync; a link held by a replica whose
heartbeat stopped is not trusted. The same notification makes the replica that holds a link close
it when another replica got a newer link for the workspace, or the link's token is no longer the
workspace's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from workdock.chat import notify
from workdock.chat.notify import Notifier
from workdock.chat.replicas import ReplicaRegistry
from workdock.chat.store.models import AgentLink, utcnow
from workdock.chat.store.repo import Store
from workdock.chat.tasks import spawn
from workdock.link.registry import Elsewhere, LinkRegistry, LinkState
from workdock.link.session import CLOSE_REPLACED, CLOSE_REVOKED

logger = logging.getLogger(__name__)

HOLDER_STOPPED = "the server that held the link stopped"
REPLACED = "another agent linked for this workspace"


@dataclass(frozen=True)
class _Row:
    replica_id: str | None
    connected_since: datetime | None
    disconnected_since: datetime | None
    last_error: str | None
    agent_version: str | None
    peer: str | None


def _row(link: AgentLink) -> _Row:
    return _Row(
        link.replica_id,
        link.connected_since,
        link.disconnected_since,
        link.last_error,
        link.agent_version,
        link.peer,
    )


class LinkDirectory:
    def __init__(self, store: Store, replicas: ReplicaRegistry, notifier: Notifier) -> None:
        self.store = store
        self.replicas = replicas
        self.notifier = notifier
        self.links: LinkRegistry | None = None  # the registry this is the directory of
        self._rows: dict[str, _Row] = {}
        notifier.listen(notify.LINKS, self._on_links)

    async def start(self, earlier_lives: list[str] | None) -> None:
        """The links this replica held in an earlier life (None: every other holder's, on SQLite)
        died with it: say so, then read where every link is."""
        held = (
            AgentLink.replica_id.in_(earlier_lives)
            if earlier_lives is not None
            else AgentLink.replica_id != self.replicas.id
        )
        try:
            async with self.store.sessions.begin() as s:
                await s.execute(
                    update(AgentLink)
                    .where(held, AgentLink.replica_id.is_not(None))
                    .values(replica_id=None, disconnected_since=utcnow(), last_error=HOLDER_STOPPED)
                )
        except Exception as exc:  # a read-only database: the rows stay, their holders are not alive
            logger.warning("cannot mark the links of an earlier start as gone: %r", exc)
        await self.load()

    async def load(self) -> None:
        async with self.store.sessions() as s:
            links = (await s.scalars(select(AgentLink))).all()
        self._rows = {link.workspace_id: _row(link) for link in links}

    # ---- what the registry asks ------------------------------------------------------------------

    def elsewhere(self, workspace_id: str) -> Elsewhere | None:
        row = self._rows.get(workspace_id)
        if row is None:
            return None
        state = LinkState(
            connected_since=row.connected_since,
            disconnected_since=row.disconnected_since,
            last_error=row.last_error,
            agent_version=row.agent_version,
            peer=row.peer,
        )
        if row.replica_id is None:
            return Elsewhere(None, state)
        peer = self.replicas.peer(row.replica_id)
        if row.replica_id != self.replicas.id and peer is not None and peer.alive:
            return Elsewhere(peer.address, state)
        # Held by a replica that stopped (or by an earlier life of this one): gone with it.
        state.disconnected_since = peer.heartbeat_at if peer is not None else row.connected_since
        state.last_error = HOLDER_STOPPED
        return Elsewhere(None, state)

    async def linked(self, workspace_id: str, state: LinkState) -> None:
        """A link landed here. The newest link of a workspace wins, wherever it landed: the row is
        taken over unless it holds a newer one (then ours is closed), and the replica that held it
        closes its own when ``LINKS`` tells it."""
        since = state.connected_since
        values = {
            "replica_id": self.replicas.id,
            "connected_since": since,
            "disconnected_since": None,
            "last_error": None,
            "agent_version": state.agent_version,
            "peer": state.peer,
        }
        newer_elsewhere = False
        for _ in range(2):  # an insert can race another replica's for the same workspace
            try:
                async with self.store.sessions.begin() as s:
                    link = await s.get(AgentLink, workspace_id, with_for_update=True)
                    if link is None:
                        s.add(AgentLink(workspace_id=workspace_id, **values))
                    elif (
                        link.replica_id not in (None, self.replicas.id)
                        and self.replicas.alive(link.replica_id)
                        and link.connected_since is not None
                        and since is not None
                        and link.connected_since > since
                    ):
                        newer_elsewhere = True
                    else:
                        for name, value in values.items():
                            setattr(link, name, value)
                break
            except IntegrityError:
                continue
        if newer_elsewhere and self.links is not None:
            spawn(self.links.disconnect(workspace_id, CLOSE_REPLACED, REPLACED))
            return
        self._rows[workspace_id] = _Row(self.replicas.id, since, None, None, state.agent_version, state.peer)
        await self.notifier.notify(notify.LINKS, workspace_id)

    async def unlinked(self, workspace_id: str, state: LinkState) -> None:
        async with self.store.sessions.begin() as s:
            # Only our own row: a newer link elsewhere has already taken it over.
            await s.execute(
                update(AgentLink)
                .where(AgentLink.workspace_id == workspace_id, AgentLink.replica_id == self.replicas.id)
                .values(
                    replica_id=None,
                    disconnected_since=state.disconnected_since,
                    last_error=state.last_error,
                )
            )
        await self.notifier.notify(notify.LINKS, workspace_id)

    # ---- what other replicas changed --------------------------------------------------------------

    def _on_links(self, payload: str | None) -> None:
        if payload is None:
            spawn(self._refresh_all())
        elif payload:
            spawn(self._refresh(payload))

    async def _refresh_all(self) -> None:
        try:
            await self.load()
        except Exception as exc:
            logger.warning("cannot read where the agent links are: %r", exc)
            return
        for workspace_id in self.links.linked_here() if self.links is not None else []:
            await self._refresh(workspace_id)

    async def _refresh(self, workspace_id: str) -> None:
        try:
            async with self.store.sessions() as s:
                link = await s.get(AgentLink, workspace_id)
            workspace = await self.store.get_workspace(workspace_id)
        except Exception as exc:
            logger.warning("workspace %s: cannot read where its link is: %r", workspace_id, exc)
            return
        if link is None:
            self._rows.pop(workspace_id, None)
        else:
            self._rows[workspace_id] = _row(link)
        links = self.links
        if links is None:
            return
        held = links.token_hash(workspace_id)
        if held is None:
            return  # no link here: nothing to close
        if workspace is None or not workspace.linked or workspace.agent_token_hash != held:
            why = "the workspace was deleted" if workspace is None else "the agent token was replaced"
            await links.disconnect(workspace_id, CLOSE_REVOKED, why)
        elif link is not None and link.replica_id not in (None, self.replicas.id):
            await links.disconnect(workspace_id, CLOSE_REPLACED, REPLACED)
