"""The agent's workspace operations: files and processes in the workspace dir (spec/chat.md section 5).

``workspace_router`` serves them over HTTP; ``ProcessTable`` owns every process they start.
"""

from workdock.agent.workspace.processes import ProcessTable
from workdock.agent.workspace.router import workspace_router

__all__ = ["ProcessTable", "workspace_router"]
