"""workdock: a workspace's own MCP servers, brought into AI chat."""

__version__ = "0.1.0"
