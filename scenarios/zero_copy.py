"""Sending a file over a socket twice: through a read/send copy loop, and with sendfile."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="zero-copy",
    title="Zero-copy sendfile against a read/write copy loop",
    model="asyncio",
    concept=(
        "A copy loop reads each chunk of a file into a Python bytes object and hands it back "
        "to the kernel with send: every chunk crosses into user space and back, and the task "
        "must run for each one. sendfile() asks the kernel to move the bytes from the file to "
        "the socket itself, so the task makes one call and waits. We use asyncio because its "
        "timeline shows exactly this: a task lane per sender, whose running steps are the "
        "moments Python had to touch the data."
    ),
    observe=(
        "The same 4 MiB file goes out twice over loopback. 'copy-sender' runs in many short "
        "steps, one or more per burst of 64 KiB chunks, waiting on the socket in between. "
        "'sendfile-sender' runs once to start loop.sock_sendfile and once when it is done; "
        "in between it waits while the loop re-arms sendfile whenever the socket has room."
    ),
)

FILE_SIZE = 4 * 1024 * 1024
CHUNK_SIZE = 64 * 1024
# Small socket buffers, as on a slow link: the sender has to wait for the receiver often.
SOCKET_BUFFER = 64 * 1024

Sender = Callable[[socket.socket, Path], Awaitable[int]]


async def copy_loop(sock: socket.socket, path: Path) -> int:
    loop = asyncio.get_running_loop()
    sends = 0
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_SIZE):  # file -> kernel -> our bytes object
            await loop.sock_sendall(sock, chunk)  # our bytes object -> kernel -> socket
            sends += 1
    return sends


async def send_file(sock: socket.socket, path: Path) -> int:
    loop = asyncio.get_running_loop()
    with path.open("rb") as source:
        await loop.sock_sendfile(sock, source, fallback=False)  # file -> socket, in the kernel
    return 1


async def receive(sock: socket.socket) -> str:
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    while data := await loop.sock_recv(sock, CHUNK_SIZE):
        digest.update(data)
    return digest.hexdigest()


async def transfer(listener: socket.socket, path: Path, name: str, sender: Sender) -> str:
    """Connects a fresh socket pair over loopback and sends the file through it with `sender`."""
    loop = asyncio.get_running_loop()
    outgoing = socket.socket()
    outgoing.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    outgoing.setblocking(False)
    await loop.sock_connect(outgoing, listener.getsockname())
    incoming, _ = await loop.sock_accept(listener)
    incoming.setblocking(False)
    with outgoing, incoming:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            receiving = group.create_task(receive(incoming), name=f"{name}-receiver")
            sending = group.create_task(sender(outgoing, path), name=f"{name}-sender")
            sending.add_done_callback(lambda _: outgoing.shutdown(socket.SHUT_WR))
        elapsed_ms = (time.perf_counter() - started) * 1000
    print(f"{name}: {sending.result()} send call(s), {elapsed_ms:.0f} ms")
    return receiving.result()


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder, socket.socket() as listener:
        path = Path(folder) / "payload.bin"
        path.write_bytes(bytes(range(256)) * (FILE_SIZE // 256))
        expected = hashlib.sha256(path.read_bytes()).hexdigest()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        for name, sender in (("copy", copy_loop), ("sendfile", send_file)):
            received = await transfer(listener, path, name, sender)
            if received != expected:
                raise RuntimeError(f"{name}: the receiver got different bytes than the file")
    print("both transfers delivered the file intact")
