"""A slow, lossy link of the test's own (this kernel has no netem): a TCP proxy that delays every chunk each way and
drops every connection now and then. The delay and the drop period are read from a control file each time they
are used, so a scenario slows the link down and heals it while connections live.

Usage: python -m tests.hosts.slow_proxy LISTEN_HOST:PORT TARGET_HOST:PORT CONTROL_FILE
CONTROL_FILE holds `<delay_ms> <drop_every_s>` (0 0: a plain proxy).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

CHUNK_BYTES = 65536


class Link:
    """What the control file says now."""

    def __init__(self, control: Path) -> None:
        self.control = control

    def read(self) -> tuple[float, float]:
        try:
            delay_ms, drop_every_s = self.control.read_text().split()
            return float(delay_ms) / 1000, float(drop_every_s)
        except (OSError, ValueError):
            return 0.0, 0.0


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link) -> None:
    """Copy one direction, each chunk after the link's delay (in order: one chunk at a time)."""
    try:
        while chunk := await reader.read(CHUNK_BYTES):
            delay_s, _ = link.read()
            if delay_s:
                await asyncio.sleep(delay_s)
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def main(listen: str, target: str, control: Path) -> None:
    link = Link(control)
    target_host, target_port = target.rsplit(":", 1)
    connections: set[asyncio.StreamWriter] = set()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client_writer.close()
            return
        connections.update({client_writer, server_writer})
        try:
            await asyncio.gather(pipe(client_reader, server_writer, link), pipe(server_reader, client_writer, link))
        finally:
            connections.difference_update({client_writer, server_writer})

    async def drop_now_and_then() -> None:
        while True:
            _, drop_every_s = link.read()
            await asyncio.sleep(drop_every_s or 0.5)
            if drop_every_s:
                for writer in list(connections):
                    writer.transport.abort()

    host, port = listen.rsplit(":", 1)
    server = await asyncio.start_server(serve, host, int(port))
    asyncio.get_running_loop().create_task(drop_now_and_then())
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
