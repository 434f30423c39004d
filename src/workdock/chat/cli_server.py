"""``workdock server``: run the chat server."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from workdock.chat.app import create_app
from workdock.chat.services import ServerConfig, default_data_dir

DEFAULT_LISTEN = "127.0.0.1:3000"


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen expects HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def server_config(listen: str, database_url: str | None, data_dir: Path | None,
                  public_url: str | None = None) -> ServerConfig:
    host, port = parse_listen(listen)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return ServerConfig(data_dir=data_dir or default_data_dir(), database_url=database_url,
                        public_url=public_url or f"http://{shown}:{port}")


def run_server(listen: str = DEFAULT_LISTEN, database_url: str | None = None, data_dir: Path | None = None,
               public_url: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM. Migrations run on start; the first start prints a login URL."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = server_config(listen, database_url, data_dir, public_url)
    host, port = parse_listen(listen)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", lifespan="on",
                timeout_graceful_shutdown=10)


if __name__ == "__main__":  # `python -m workdock.chat.cli_server [LISTEN] [DATABASE_URL]` (tests)
    import argparse

    parser = argparse.ArgumentParser(prog="workdock server")
    parser.add_argument("--listen", default=DEFAULT_LISTEN)
    parser.add_argument("--database-url")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    run_server(args.listen, args.database_url, args.data_dir)
