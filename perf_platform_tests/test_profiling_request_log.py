"""The request log writer: lines written in batches, none lost, at exit too, JSON each."""

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from perf_platform.request_log import (
    REQUEST_LOGGER,
    RequestLog,
    flush_request_logs,
    open_request_log,
    request_log_path,
)

ROOT = Path(__file__).resolve().parent.parent


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def entry(request_id: str, route: str = "/items/{item_id}") -> tuple:
    return (time.time(), "GET", route, 200, 1.25, request_id)


def test_lines_reach_the_file_without_anyone_flushing(tmp_path):
    request_log = open_request_log("unflushed", tmp_path)

    request_log.append(entry("by-itself"))

    # The writer thread writes every half second; allow a very busy machine plenty of time.
    deadline = time.monotonic() + 10
    while not request_log.path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [line["request_id"] for line in read_lines(request_log.path)] == ["by-itself"]


def test_no_line_is_lost_while_threads_append_and_the_writer_flushes(tmp_path):
    request_log = open_request_log("concurrent", tmp_path)
    threads_count, per_thread = 8, 2500

    def produce(thread: int) -> None:
        for index in range(per_thread):
            request_log.append(entry(f"{thread}-{index}"))

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        flush_request_logs()
    for thread in threads:
        thread.join()
    flush_request_logs()

    ids = [line["request_id"] for line in read_lines(request_log.path)]
    assert len(ids) == threads_count * per_thread
    assert set(ids) == {f"{t}-{i}" for t in range(threads_count) for i in range(per_thread)}


def test_pending_lines_are_written_when_the_process_exits(tmp_path):
    program = (
        "from fastapi import FastAPI\n"
        "import asyncio\n"
        "from perf_platform.profiling import add_profiling\n"
        "app = FastAPI()\n"
        "@app.get('/ping')\n"
        "async def ping():\n"
        "    return {}\n"
        "add_profiling(app, service='exiting')\n"
        "async def call():\n"
        "    async def receive():\n"
        "        return {'type': 'http.request', 'body': b'', 'more_body': False}\n"
        "    async def send(message):\n"
        "        pass\n"
        "    scope = {'type': 'http', 'method': 'GET', 'path': '/ping', 'root_path': '',\n"
        "             'headers': [(b'x-request-id', b'last-words')], 'query_string': b''}\n"
        "    await app(scope, receive, send)\n"
        "asyncio.run(call())\n"
    )
    environment = {**os.environ, "REQUEST_LOG_DIR": str(tmp_path)}

    subprocess.run(
        [sys.executable, "-c", program], env=environment, cwd=ROOT, check=True, timeout=120
    )

    [line] = read_lines(tmp_path / "exiting.jsonl")
    assert (line["route"], line["request_id"]) == ("/ping", "last-words")


def test_a_batch_that_cannot_be_written_is_kept_and_written_later(tmp_path):
    missing_folder = tmp_path / "not-yet"
    observed: list[str] = []
    request_log = RequestLog(
        "retrying",
        missing_folder / "retrying.jsonl",
        observer=lambda batch: observed.extend(request_id for *_, request_id in batch),
    )
    request_log.append(entry("kept-1"))
    request_log.append(entry("kept-2"))

    assert request_log.write_pending() == 0
    assert request_log.write_pending() == 0
    assert not request_log.path.exists()

    missing_folder.mkdir()
    request_log.append(entry("kept-3"))
    assert request_log.write_pending() == 3
    ids = [line["request_id"] for line in read_lines(request_log.path)]
    assert ids == ["kept-1", "kept-2", "kept-3"]
    # Each entry reaches the histogram once, however many times its line was retried.
    assert observed == ["kept-1", "kept-2", "kept-3"]


def test_each_line_is_a_json_object_with_every_field(tmp_path):
    request_log = RequestLog("fields", tmp_path / "fields.jsonl")
    request_log.append((1_700_000_000.25, "POST", '/odd "route"', 503, 12.3456, 'id "quoted"\n'))

    request_log.write_pending()

    assert read_lines(request_log.path) == [
        {
            "ts": "2023-11-14T22:13:20.250Z",
            "service": "fields",
            "method": "POST",
            "route": '/odd "route"',
            "status": 503,
            "duration_ms": 12.346,
            "request_id": 'id "quoted"\n',
        }
    ]


def test_handlers_on_the_request_logger_receive_every_line(tmp_path):
    received: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            received.append(record.getMessage())

    handler = Collect(level=logging.INFO)
    REQUEST_LOGGER.addHandler(handler)
    REQUEST_LOGGER.setLevel(logging.INFO)
    try:
        request_log = RequestLog("routed", tmp_path / "routed.jsonl")
        request_log.append(entry("routed-1"))
        request_log.append(entry("routed-2"))
        request_log.write_pending()
    finally:
        REQUEST_LOGGER.removeHandler(handler)
        REQUEST_LOGGER.setLevel(logging.NOTSET)

    assert [json.loads(message)["request_id"] for message in received] == [
        "routed-1",
        "routed-2",
    ]


def test_the_log_file_is_named_after_the_service(tmp_path):
    assert request_log_path("scoring", tmp_path) == tmp_path / "scoring.jsonl"
    with pytest.raises(ValueError, match="service name"):
        request_log_path("a/b", tmp_path)


def test_a_forked_worker_writes_its_own_lines_and_not_its_parents(tmp_path):
    program = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from perf_platform.profiling import new_request_id\n"
        "from perf_platform.request_log import open_request_log\n"
        "log = open_request_log('forked', Path(sys.argv[1]))\n"
        "log.append((time.time(), 'GET', '/parent', 200, 1.0, new_request_id()))\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    log.append((time.time(), 'GET', '/child', 200, 1.0, new_request_id()))\n"
        "    sys.exit(0)\n"
        "os.waitpid(child, 0)\n"
    )

    subprocess.run(
        [sys.executable, "-c", program, str(tmp_path)], cwd=ROOT, check=True, timeout=120
    )

    lines = read_lines(tmp_path / "forked.jsonl")
    assert sorted(line["route"] for line in lines) == ["/child", "/parent"]
    prefixes = {line["request_id"][:16] for line in lines}
    assert len(prefixes) == 2  # the child made its ids with a prefix of its own
