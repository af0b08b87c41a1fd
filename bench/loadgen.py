"""A lean HTTP/1.1 load generator for signed callbacks: raw asyncio streams, keep-alive, no client library.

Requests are encoded (and signed) before the clock starts, so each one costs the generator a write
and a read of a small response: a few tens of microseconds, far below what the service spends.

Two modes:
- closed loop: `connections` connections each send their next request as soon as the last is answered
  (the most the service can take);
- open loop: request i is due at `start + i / rate`, whatever happened before it; its latency counts
  from when it was due, so a service that falls behind shows it (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]
    cpu_seconds: float  # the generator's own CPU over the run

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds


def encode_request(host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(host: str, port: int, requests: list[list[bytes]], connections: int) -> LoadResult:
    """`requests` is a list of sequences (one call's events, in order); each connection takes whole ones."""
    pending = iter(requests)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        conn = await Connection.open(host, port)
        for sequence in pending:
            for request in sequence:
                started = time.perf_counter()
                status = await conn.send(request)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        conn.close()

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return LoadResult(time.perf_counter() - started, latencies, statuses, time.process_time() - cpu)


async def open_loop(host: str, port: int, requests: list[bytes], rate: float, connections: int) -> LoadResult:
    """Send `requests` in order at `rate` per second over a pool of up to `connections` connections."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(host, port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def one(request: bytes, due: float) -> None:
        conn = await pool.get()
        status = await conn.send(request)
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(conn)

    cpu = time.process_time()
    start = time.perf_counter()
    tasks = []
    for i, request in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return LoadResult(elapsed, latencies, statuses, time.process_time() - cpu)
