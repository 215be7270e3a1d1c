"""A killable child process for work that may hang or blow up (PDF parsing, rendering, OCR).

The parent sends one request at a time and waits with a timeout; on a timeout the child is killed and
restarted on the next call, so a hostile page costs one page, never the build. The child's address
space is capped (RLIMIT_AS), so a decompression bomb fails inside it instead of exhausting the machine.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)


class WorkerTimeout(Exception):
    """The request ran past its time limit; the child was killed."""


class WorkerDied(Exception):
    """The child exited while serving a request (crash, OOM kill, segfault)."""


def _serve(conn: Any, factory: str, args: dict[str, Any], memory_mb: int | None) -> None:
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    mod, _, name = factory.partition(":")
    handler = getattr(importlib.import_module(mod), name)(**args)
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if msg is None:
            return
        try:
            result = handler.handle(msg)
            if inspect.isgenerator(result):  # a stream: one message per item, then an end marker
                for item in result:
                    conn.send(("item", item))
                conn.send(("end", None))
            else:
                conn.send(("ok", result))
        except MemoryError:
            conn.send(("error", ("out_of_memory", f"memory cap {memory_mb} MB exceeded")))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which turns it into a rejection
            if isinstance(getattr(e, "reason", None), str):  # a Reject(reason, detail) from the handler
                conn.send(("error", (e.reason, getattr(e, "detail", ""))))
                continue
            conn.send(("error", ("worker_error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"[:2000])))


class KillableWorker:
    """Runs `factory(**args).handle(msg)` in a spawned child; `call` enforces a timeout per request."""

    def __init__(self, factory: str, args: dict[str, Any] | None = None, memory_mb: int | None = None,
                 start_timeout_s: float = 120.0):
        self.factory = factory
        self.args = args or {}
        self.memory_mb = memory_mb
        self.start_timeout_s = start_timeout_s
        self._proc: Any = None
        self._conn: Any = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        ctx = mp.get_context("spawn")  # fork is unsafe under Ray and with onnxruntime threads
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(child, self.factory, self.args, self.memory_mb), daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(self.start_timeout_s):
            self.kill()
            raise WorkerTimeout(f"worker {self.factory} did not start in {self.start_timeout_s:.0f} s")
        try:
            status, _ = parent.recv()
        except EOFError:
            code = proc.exitcode
            self.kill()
            raise WorkerDied(f"worker {self.factory} died while starting (exit code {code})") from None
        assert status == "ready"

    def _send(self, msg: Any) -> None:
        if not self.alive():
            if self._proc is not None:
                self.restarts += 1
            self.start()
        self._conn.send(msg)

    def _receive(self, limit: float) -> tuple[str, Any]:
        """One (status, value) from the child within `limit` seconds; kills it on a timeout or death."""
        if not self._conn.poll(max(limit, 0.001)):
            self.kill()
            raise WorkerTimeout(f"no answer in {limit:.1f} s")
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(1)
            code = self._proc.exitcode
            self.kill()
            raise WorkerDied(f"worker exited with code {code}") from None

    def call(self, msg: Any, timeout: float) -> Any:
        """Send one request; returns the handler's value or raises WorkerTimeout/WorkerDied/RemoteError."""
        self._send(msg)
        status, value = self._receive(timeout)
        if status == "error":
            raise RemoteError(*value)
        return value

    def stream(self, msg: Any, timeout: float | Callable[[], float]) -> Iterator[Any]:
        """Send one request whose handler yields; yield its items as they come. The child runs at
        most a pipe buffer ahead (back-pressure), and every item must arrive within `timeout`
        seconds (a number or a function giving the limit for the next item)."""
        self._send(msg)
        finished = False
        try:
            while True:
                status, value = self._receive(timeout() if callable(timeout) else timeout)
                if status == "item":
                    yield value
                elif status == "end":
                    finished = True
                    return
                elif status == "error":
                    finished = True
                    raise RemoteError(*value)
                else:
                    finished = True
                    return
        finally:
            if not finished:  # the consumer stopped early: the child is mid-stream, start afresh
                self.kill()

    def kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.is_alive():
            self._proc.kill()  # SIGKILL: a hung MuPDF or ONNX call never returns to handle SIGTERM
        self._proc.join(5)
        try:
            self._conn.close()
        except OSError:
            pass
        self._proc = self._conn = None

    def close(self) -> None:
        if self.alive():
            try:
                self._conn.send(None)
                self._proc.join(2)
            except (OSError, BrokenPipeError):
                pass
        self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the child (0 when not running)."""
        if not self.alive():
            return 0
        import psutil

        try:
            return int(psutil.Process(self._proc.pid).memory_info().rss)
        except psutil.Error:
            return 0

    def __del__(self) -> None:  # a dropped operator must not leave a child behind
        proc = self._proc
        if proc is not None and proc.pid != os.getpid() and proc.is_alive():
            proc.kill()


class RemoteError(Exception):
    """The handler raised: `reason` is a snake_case rejection reason, `detail` the error text."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
