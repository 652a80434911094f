"""The add-on's one background thread: every braas-globus service call runs here.

Flamenco's pattern: the UI puts a :class:`Request` on a queue; one daemon thread runs the
operation and sends small dataclass messages back (:class:`Started`, :class:`Step`,
:class:`Progress`, :class:`Finished`, :class:`Failed`, :class:`Stopped`), which
``results.py`` drains on a ``bpy.app.timers`` callback every 0.25 s. Nothing here imports
``bpy``, and the UI never waits on this thread.

One thread, because the Globus app is not thread safe. :meth:`Worker.abort` stops the
current operation: the service's progress callbacks raise :class:`OperationAborted` at its
next report (the service then takes a half-made job back out), and a login waiting for the
browser is told at once through its own redirect address. Requests still waiting are dropped.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --- messages: worker -> UI ------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    operation: str
    label: str
    quiet: bool


@dataclass(frozen=True)
class Step:
    text: str


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    unit: str = "frames"  # or "bytes" (braas_globus.progress)


@dataclass(frozen=True)
class Finished:
    operation: str
    label: str
    result: Any
    quiet: bool


@dataclass(frozen=True)
class Failed:
    operation: str
    label: str
    message: str
    quiet: bool


@dataclass(frozen=True)
class Stopped:
    operation: str
    label: str
    quiet: bool


Message = Started | Step | Progress | Finished | Failed | Stopped


# --- requests: UI -> worker ------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    operation: str
    args: dict = field(default_factory=dict)
    quiet: bool = False  # an automatic refresh: the status line shows only its failure
    generation: int = 0  # aborts before it was made


class OperationAborted(Exception):
    """Raised inside the service by a progress report after the user pressed abort."""


class Context:
    """What an operation gets: the service (opened on first use), a reporter, notes."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._service = None
        self.on_abort: Callable[[], None] | None = None

    # the service's Reporter protocol
    def step(self, text: str) -> None:
        self.check()
        self._worker._send(Step(text))

    def progress(self, done: int, total: int, unit: str = "frames") -> None:
        self.check()
        self._worker._send(Progress(done, total, unit))

    def check(self) -> None:
        if self._worker._abort.is_set():
            raise OperationAborted()

    def service(self):
        if self._service is None:
            from braas_globus.service import Service

            self._service = Service.open()
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.store.close()
            self._service = None


Operation = Callable[..., Any]


class Worker:
    """One daemon thread running operations (``operations.OPERATIONS``), one at a time."""

    def __init__(self, operations: dict[str, tuple[str, Operation]] | None = None) -> None:
        if operations is None:
            from .operations import OPERATIONS as operations
        self.operations = operations
        self._requests: queue.Queue[Request | None] = queue.Queue()
        self._messages: queue.Queue[Message] = queue.Queue()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[str] = []  # operations queued or running
        self._generation = 0  # counts aborts
        self._current: tuple[Request, Context] | None = None
        self._thread = threading.Thread(target=self._run, name="braas-globus worker",
                                        daemon=True)
        self._thread.start()

    # --- called from the UI thread -------------------------------------------------------
    def request(self, operation: str, quiet: bool = False, **args: Any) -> None:
        if operation not in self.operations:
            raise KeyError(f"no operation {operation!r}")
        with self._lock:
            self._pending.append(operation)
            generation = self._generation
        self._requests.put(Request(operation, args, quiet, generation))

    def pending(self, operation: str | None = None) -> bool:
        """Is ``operation`` (any operation, if None) queued or running?"""
        with self._lock:
            return bool(self._pending) if operation is None else operation in self._pending

    def busy(self) -> bool:
        """Is an operation running (an automatic refresh too: it can be aborted as well)?"""
        with self._lock:
            return self._current is not None

    def abort(self) -> bool:
        """Stop the running operation and drop the waiting ones; True if there was one."""
        with self._lock:
            self._generation += 1  # requests made before this are dropped unrun
            current = self._current
            if current is not None:
                self._abort.set()
            waiting = len(self._pending) - (current is not None)
        if current is not None and current[1].on_abort is not None:
            threading.Thread(target=current[1].on_abort, daemon=True).start()
        return current is not None or waiting > 0

    def messages(self) -> list[Message]:
        """Every message so far, oldest first (never blocks)."""
        found = []
        while True:
            try:
                found.append(self._messages.get_nowait())
            except queue.Empty:
                return found

    def stop(self, timeout: float = 10.0) -> None:
        """Abort, end the thread, and wait for it up to ``timeout`` seconds."""
        self.abort()
        self._requests.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the thread ----------------------------------------------------------------------
    def _send(self, message: Message) -> None:
        self._messages.put(message)

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            label, function = self.operations[request.operation]
            context = Context(self)
            with self._lock:
                dropped = request.generation != self._generation
                if dropped:
                    self._pending.remove(request.operation)
                else:
                    self._current = (request, context)
            if dropped:
                self._send(Stopped(request.operation, label, request.quiet))
                continue
            try:
                if not request.quiet:
                    self._send(Started(request.operation, label, request.quiet))
                result = function(context, **request.args)
            except OperationAborted:
                self._send(Stopped(request.operation, label, request.quiet))
            except Exception as err:  # every failure becomes a message in the panel
                if self._abort.is_set():
                    self._send(Stopped(request.operation, label, request.quiet))
                else:
                    self._send(Failed(request.operation, label, _plain(err), request.quiet))
            else:
                self._send(Finished(request.operation, label, result, request.quiet))
            finally:
                context.close()
                with self._lock:
                    self._current = None
                    self._pending.remove(request.operation)
                    self._abort.clear()


def _plain(err: Exception) -> str:
    """braas-globus errors say what to do already; anything else is a bug worth a trace."""
    from braas_globus.errors import BraasError

    if isinstance(err, BraasError):
        return str(err)
    traceback.print_exception(err, file=sys.stderr)
    return f"unexpected error ({type(err).__name__}: {err}); details are in the system console"


def blender_for_service(binary_path: str) -> None:
    """Render with this same Blender unless BRAAS_BLENDER says otherwise.

    PyPI ``bpy`` (Blender as a Python module) has no executable: then braas-globus finds
    Blender as it does outside Blender (its settings, PATH, or ``bpy`` in this Python).
    """
    if os.environ.get("BRAAS_BLENDER"):
        return
    if binary_path and os.path.isfile(binary_path) and os.access(binary_path, os.X_OK):
        os.environ["BRAAS_BLENDER"] = binary_path
