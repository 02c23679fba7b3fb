"""The request log: one JSON line per request, written in batches off the request path.

A `logging` call per request costs 13 to 30 us here (a LogRecord, a lock, a format, a write), about
as much as the request it describes. So the middleware only appends a tuple to its service's pending
list, and one writer thread per process takes the pending tuples every half second (at exit, and
before every /metrics scrape): it hands them to the log's observer (add_profiling's histogram),
turns them into lines and appends them to the service's file with a single write. Nothing is
dropped: a batch that cannot be written is kept and retried, and observed only once. Handlers
attached to the `perf_platform.requests` logger also receive every line, as INFO records, from
the writer thread.
"""

import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from pathlib import Path

from perf_platform.settings import get_settings

REQUEST_LOGGER = logging.getLogger("perf_platform.requests")
log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.5
# A log that cannot be written for this long keeps at most this many lines, oldest dropped first.
MAX_PENDING_LINES = 1_000_000

SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

# One pending request: wall-clock time, method, route template, status, duration, request id.
Entry = tuple[float, str, str, int, float, str]


def request_log_path(service: str, directory: Path | None = None) -> Path:
    """Where the request log of `service` lives: `<REQUEST_LOG_DIR>/<service>.jsonl`."""
    if not SERVICE_NAME.fullmatch(service):
        raise ValueError(
            f"service name {service!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it names the request log file)"
        )
    return (directory or get_settings().request_log_dir) / f"{service}.jsonl"


@dataclass(eq=False)
class RequestLog:
    """The request log of one service: the pending entries and the file they go to."""

    service: str
    path: Path
    pending: list[Entry] = field(default_factory=list)
    lines_written: int = 0
    # Sees each entry once, in the writer's batches, before its line is written.
    observer: Callable[[list[Entry]], None] | None = None

    def __post_init__(self) -> None:
        # Bound once: the middleware calls it for every request.
        self.append = self.pending.append
        self._line_middles: dict[tuple[str, str, int], str] = {}
        # Observed entries whose lines could not be written yet.
        self._unwritten: list[Entry] = []

    def take_pending(self) -> list[Entry]:
        # Slicing and deleting are single steps under the GIL, so an entry appended between
        # them stays for the next batch; no lock is needed on the request path.
        count = len(self.pending)
        batch = self.pending[:count]
        del self.pending[:count]
        return batch

    def drop_everything_pending(self) -> None:
        """Forget the entries not written yet (a forked child: its parent writes them)."""
        self.take_pending()
        self._unwritten = []

    def format_lines(self, batch: list[Entry]) -> list[str]:
        """The JSON line of each entry, e.g. {"ts":"2025-01-31T12:00:00.123Z","service":"scoring",
        "method":"POST","route":"/score","status":200,"duration_ms":1.234,"request_id":"..."}."""
        middles = self._line_middles
        second = -1
        head = ""
        lines = []
        for ts, method, route, status, duration_ms, request_id in batch:
            # Method, route and status come from small sets: their JSON is made once.
            middle = middles.get((method, route, status))
            if middle is None:
                middle = middles[method, route, status] = (
                    f',"service":{encode_basestring_ascii(self.service)},'
                    f'"method":{encode_basestring_ascii(method)},'
                    f'"route":{encode_basestring_ascii(route)},"status":{status},"duration_ms":'
                )
            # The date and time to the second change once a second: formatted once a second.
            if int(ts) != second:
                second = int(ts)
                head = '{"ts":"' + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            lines.append(
                f'{head}.{int((ts - second) * 1000):03d}Z"{middle}{duration_ms:.3f},'
                f'"request_id":{encode_basestring_ascii(request_id)}}}'
            )
        return lines

    def write_pending(self) -> int:
        """Observe the new entries, then append every unwritten one to the file; returns how
        many lines were written."""
        fresh = self.take_pending()
        if fresh and self.observer is not None:
            self.observer(fresh)
        batch = self._unwritten + fresh if self._unwritten else fresh
        self._unwritten = []
        if not batch:
            return 0

        lines = self.format_lines(batch)
        try:
            _append_to_file(self.path, "\n".join(lines) + "\n")
        except OSError as exc:
            self._keep_unwritten(batch, exc)
            return 0
        self.lines_written += len(lines)

        if REQUEST_LOGGER.handlers and REQUEST_LOGGER.isEnabledFor(logging.INFO):
            for line in lines:
                REQUEST_LOGGER.handle(
                    REQUEST_LOGGER.makeRecord(
                        REQUEST_LOGGER.name, logging.INFO, __file__, 0, line, None, None
                    )
                )
        return len(lines)

    def _keep_unwritten(self, batch: list[Entry], error: OSError) -> None:
        overflow = len(batch) - MAX_PENDING_LINES
        self._unwritten = batch[overflow:] if overflow > 0 else batch
        log.warning(
            "event=request_log_write_failed service=%s path=%s pending=%d dropped=%d error=%r",
            self.service,
            self.path,
            len(self._unwritten),
            max(overflow, 0),
            str(error),
        )


def _append_to_file(path: Path, text: str) -> None:
    # O_APPEND with one write per batch: lines of several worker processes never interleave.
    data = text.encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


class _Writer:
    """The one writer thread of this process and the request logs it serves."""

    def __init__(self) -> None:
        self.logs: dict[Path, RequestLog] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def open(self, service: str, path: Path) -> RequestLog:
        with self.lock:
            request_log = self.logs.get(path)
            if request_log is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                request_log = self.logs[path] = RequestLog(service, path)
            self._start()
        return request_log

    def flush(self) -> int:
        with self.lock:
            return sum(request_log.write_pending() for request_log in list(self.logs.values()))

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(
                target=self._run, name="perf-platform-request-log", daemon=True
            )
            self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_SECONDS)
            try:
                self.flush()
            except Exception:
                # The thread must outlive any one bad batch, or every later line would be lost.
                log.exception("event=request_log_flush_failed")

    def after_fork_in_child(self) -> None:
        # The parent writes what was pending at the fork; the child starts empty, with a
        # fresh lock (the parent's may have been held) and its own thread.
        self.lock = threading.Lock()
        self.thread = None
        for request_log in self.logs.values():
            request_log.drop_everything_pending()
        if self.logs:
            self._start()


_writer = _Writer()
atexit.register(_writer.flush)
os.register_at_fork(after_in_child=_writer.after_fork_in_child)


def open_request_log(service: str, directory: Path | None = None) -> RequestLog:
    """The request log of `service` in this process, its writer thread running."""
    return _writer.open(service, request_log_path(service, directory))


def flush_request_logs() -> int:
    """Write every pending line now (at exit this happens by itself); returns how many."""
    return _writer.flush()
