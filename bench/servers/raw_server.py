"""A minimal stdio MCP server for benchmarks, written without the SDK so it starts in milliseconds.

Env: `TOOL_COUNT` (default 1) tools `tool_000`..., each echoing its arguments;
`START_DELAY` seconds to wait before answering the handshake (a server that
fetches or warms up on start, as `npx` servers do). Speaks the 2025 handshake;
`server/discover` is refused as an unknown method.
"""

from __future__ import annotations

import json
import os
import sys
import time

TOOL_COUNT = int(os.environ.get("TOOL_COUNT", "1"))
START_DELAY = float(os.environ.get("START_DELAY", "0"))
TOOLS = [
    {
        "name": f"tool_{i:03d}",
        "description": f"Benchmark tool number {i}: echoes its arguments.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    }
    for i in range(TOOL_COUNT)
]


def answer(request_id: object, result: dict | None = None, error: dict | None = None) -> None:
    message = {"jsonrpc": "2.0", "id": request_id}
    message.update({"error": error} if error else {"result": result})
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    started = False
    for line in sys.stdin:
        message = json.loads(line)
        method, request_id = message.get("method"), message.get("id")
        if request_id is None:
            continue  # notifications
        if not started:
            time.sleep(START_DELAY)
            started = True
        if method == "initialize":
            answer(
                request_id,
                {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "raw", "version": "1"},
                },
            )
        elif method == "tools/list":
            answer(request_id, {"tools": TOOLS})
        elif method == "tools/call":
            arguments = message["params"].get("arguments") or {}
            answer(
                request_id, {"content": [{"type": "text", "text": json.dumps(arguments)}], "isError": False}
            )
        elif method == "ping":
            answer(request_id, {})
        else:
            answer(request_id, error={"code": -32601, "message": f"Method not found: {method}"})


if __name__ == "__main__":
    main()
