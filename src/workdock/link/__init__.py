"""The agent link: an agent dials the chat server over a WebSocket and is reached through it.

``frames`` is the wire format, ``session`` the multiplexer both ends share, ``dialer`` and
``asgi`` the agent's side, ``registry`` and ``transport`` the server's (docs/agent-link.md).
"""
