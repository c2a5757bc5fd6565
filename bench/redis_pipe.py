"""Bulk writes to Redis: RESP command templates and a pipelined raw-socket writer.

Loading a million profiles through a Redis client library would spend most of
its time in the client (building each command, waiting for each reply). Here
the commands of one kind of profile are rendered to RESP once, as a template
with a slot for every per-profile value; each profile then costs one bytes `%`
operation. The bytes go out over a plain socket in large chunks, while a
reader thread drains the replies in bulk and only counts them, so Redis, not
Python, sets the pace.
"""

from __future__ import annotations

import socket
import threading
from typing import Sequence
from urllib.parse import urlparse

# An argument is literal bytes, a slot name (str) filled per profile, or a
# tuple of both concatenated (a slot followed by a literal suffix, say).
Part = bytes | str
Arg = Part | tuple[Part, ...]
Command = Sequence[Arg]


def _parts(arg: Arg) -> tuple[Part, ...]:
    return arg if isinstance(arg, tuple) else (arg,)


def slots_of(commands: Sequence[Command]) -> tuple[str, ...]:
    """The slot names the commands use, in a stable order."""
    found: dict[str, None] = {}
    for command in commands:
        for arg in command:
            for part in _parts(arg):
                if isinstance(part, str):
                    found[part] = None
    return tuple(found)


def render_template(commands: Sequence[Command], lengths: dict[str, int]) -> bytes:
    """RESP for the commands, with `%(slot)b` where a slot's value goes.

    RESP prefixes every argument with its length, so the template is only
    valid for slot values of the given lengths; callers keep one per length.
    """
    out = []
    for command in commands:
        out.append(b"*%d\r\n" % len(command))
        for arg in command:
            parts = _parts(arg)
            size = sum(lengths[p] if isinstance(p, str) else len(p) for p in parts)
            out.append(b"$%d\r\n" % size)
            for part in parts:
                # A literal may hold any byte (DUMP payloads do): escape the format character.
                out.append(b"%%(%b)b" % part.encode() if isinstance(part, str)
                           else part.replace(b"%", b"%%"))
            out.append(b"\r\n")
    return b"".join(out)


def encode(*args: bytes | str | int | float) -> bytes:
    """One command as RESP, for the few commands that are not templated."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class RedisPipe:
    """Write commands without waiting; a thread counts the replies as they come.

    Every command sent through it must answer with a one-line reply (integer,
    status or error), which is true of HSET, SADD, RESTORE, PEXPIREAT and the
    like. The replies are not parsed: a reply line starting with "-" is an
    error, and these commands never answer with a negative integer.
    """

    def __init__(self, url: str, chunk_bytes: int = 1 << 20) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.chunk_bytes = chunk_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.sent = 0
        self._received = 0
        self._errors: list[bytes] = []
        self._done = threading.Condition()
        if parsed.password:
            self.write(encode("AUTH", parsed.password), 1)
        database = (parsed.path or "/0").strip("/") or "0"
        if database != "0":
            self.write(encode("SELECT", database), 1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def write(self, data: bytes, commands: int) -> None:
        """Queue `commands` commands already rendered as RESP; sent in large chunks."""
        self._pending.append(data)
        self._pending_size += len(data)
        self.sent += commands
        if self._pending_size >= self.chunk_bytes:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.sock.sendall(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0

    def _read(self) -> None:
        tail = b"\n"  # the byte before the buffer: a reply starts after a newline
        while True:
            try:
                data = self.sock.recv(1 << 18)
            except OSError:  # closed by close()
                break
            if not data:
                break
            lines = data.count(b"\n")
            if b"-" in data:
                # Rare: find the error lines themselves, for the message.
                text = tail + data
                self._errors.extend(line for line in text.split(b"\n")[1:] if line.startswith(b"-"))
            tail = data[-1:]
            with self._done:
                self._received += lines
                self._done.notify_all()
        with self._done:
            self._done.notify_all()

    def wait(self) -> None:
        """Send what is queued and wait for every reply; raise if any command failed."""
        self.flush()
        with self._done:
            while self._received < self.sent and self._reader.is_alive():
                self._done.wait(0.1)
        if self._errors:
            shown = b"; ".join(self._errors[:3]).decode(errors="replace")
            raise RuntimeError(f"{len(self._errors)} Redis command(s) failed: {shown}")
        if self._received < self.sent:
            raise RuntimeError(f"connection closed after {self._received} of {self.sent} replies")

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> "RedisPipe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
