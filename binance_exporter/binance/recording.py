"""Recording everything the exporter receives from Binance, and reading a
recording back.

A recording is a directory of files, each named by the UTC time of its
first line (``binance-20261123T090000Z.jsonl.gz``), and holding at most
one UTC hour: a new file starts with the first line of each hour, and at
each start of the exporter. A file is gzip-compressed JSON lines, and
starts with a header line::

    {"format": "binance-exporter-recording", "version": 1, "exporter": "0.2.0", "started": 1795424400.123,
     "run": 1795420800.5, "settings": {"source": "stream", "update_interval": 10.0, ...}}

(``started``: when the file was; ``run``: when the recorder was, the
same in every file one exporter process writes; ``settings``: those of
the exporter's flags that decide its answers, so that they can be
computed again from the recording)

then one line per thing received, in the order received, each with its
local receive time ``t`` (Unix seconds):

- a websocket message: ``{"t": …, "ws": <connection number>, "msg": "<the text as received>"}``;
- a REST answer the exporter used: ``{"t": …, "rest": "/api/v3/depth",
  "query": "symbol=ETHBTC&limit=1000", "body": "<the body as received>"}``;
- an update cycle reading the live books (stream mode): ``{"t": …, "cycle":
  {"n": 12, "clock": <the cycle's start on the exporter's monotonic clock>,
  "time": <Unix time of the reading>, "books": {"ETHBTC": <update id of the
  book read, null if not in sync>, …}}}``, in order with the messages
  around it: the books read hold exactly the events recorded before it
  (``"books": null``: the reading did not come in time, and the cycle
  went on without it).

``Recorder`` takes what the streams' loop and the REST client hand it
without ever waiting (a bounded queue: past ``MAX_QUEUED`` lines, lines
are dropped and counted as errors), and a thread of its own compresses
and appends them, every ``FLUSH_INTERVAL`` seconds, each batch ended by a
zlib sync flush: whatever is in a file decompresses, so after a crash
(even SIGKILL) every file reads back, less at most its last incomplete
line. Files are deleted oldest first while the directory holds more than
``max_bytes``. A failed write (a full disk, a directory that is gone)
stops recording with one logged error; the exporter goes on serving.

``read_recording`` reads a file back, line by line.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from collections import deque
from typing import Any, Callable, Iterable, Iterator, Optional, Union

import orjson

from binance_exporter import __version__
from binance_exporter.cycle.snapshot import RecordingCounts

logger = logging.getLogger(__name__)

FORMAT = "binance-exporter-recording"
FORMAT_VERSION = 1
FILE_NAME = re.compile(r"binance-(\d{8}T\d{6})Z(?:-(\d+))?\.jsonl\.gz")
MAX_QUEUED = 100_000  # lines waiting to be written: some seconds of a whole market
FLUSH_INTERVAL = 0.2  # seconds between writes: what a crash can lose
COMPRESSION_LEVEL = 6
READ_CHUNK = 1 << 16
MAX_LINE_BYTES = 16 * 2**20  # a line longer than any Binance answer the exporter takes


class RecordingError(Exception):
    """A recording that cannot be read: the message names the file and the line."""


def file_name(when: float) -> str:
    """The name of a file whose first line was received at ``when``."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("binance-%Y%m%dT%H%M%SZ.jsonl.gz")


def _hour(when: float) -> int:
    return int(when // 3600)


class Recorder:  # pylint: disable=too-many-instance-attributes  # its queue, counts, file and thread
    """Appends what ``stream_message`` and ``rest_answer`` are handed to
    the hourly files in ``directory``, keeping it within ``max_bytes``."""

    def __init__(
        self,
        directory: Union[str, Path],
        max_bytes: int,
        clock: Callable[[], float] = time.time,
        settings: Optional[dict[str, Any]] = None,
    ):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.settings = settings or {}  # the exporter's, in each file's header
        self._run_started = clock()  # names the files of one recorder: a restart is a new run
        self._clock = clock
        self._queue: deque[tuple[float, bytes]] = deque()  # appended by any thread, taken by the writer
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._order = threading.Lock()  # a line's time and its place in the queue, taken together
        self._recorded_bytes = 0
        self._errors = 0
        self._dropped_warned = False
        self._stopped = False  # a write failed: nothing more is recorded
        self._file: Optional[Any] = None
        self._file_name = ""
        self._file_hour = 0
        self._compressor: Any = None
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)

    def start(self) -> "Recorder":
        """Starts writing on a thread of its own."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Writes what is queued and closes the file (within ``timeout`` seconds)."""
        self._stopping.set()
        self._thread.join(timeout)

    def counts(self) -> RecordingCounts:
        """What has been written, and what failed, so far."""
        with self._lock:
            return RecordingCounts(self._recorded_bytes, self._errors)

    def stream_message(self, connection: int, text: Union[str, bytes]) -> None:
        """A websocket message, as received on connection number ``connection``."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self._put({"ws": connection, "msg": text})

    def rest_answer(self, endpoint: str, query: str, body: bytes) -> None:
        """The body of a REST answer the exporter used, for ``endpoint`` with ``query``."""
        self._put({"rest": endpoint, "query": query, "body": body.decode("utf-8", "replace")})

    def cycle(self, reading: dict[str, Any]) -> None:
        """An update cycle's reading of the live books (see the module's docstring)."""
        self._put({"cycle": reading})

    def _put(self, fields: dict[str, Any]) -> None:
        """Queues a line of ``fields`` received now: the time is taken as it
        is queued, so that the lines of several threads keep their order."""
        if self._stopped:
            return
        if len(self._queue) < MAX_QUEUED:
            try:
                with self._order:
                    when = self._clock()
                    self._queue.append((when, orjson.dumps({"t": when, **fields}, option=orjson.OPT_APPEND_NEWLINE)))
                return
            except orjson.JSONEncodeError:  # text that is not valid Unicode (a lone surrogate)
                pass
        elif not self._dropped_warned:
            self._dropped_warned = True
            logger.error("recording: %d lines wait to be written, more are dropped and counted", MAX_QUEUED)
        with self._lock:
            self._errors += 1

    # The writing thread.

    def _run(self) -> None:
        while True:
            stopping = self._stopping.wait(FLUSH_INTERVAL)
            batch = [self._queue.popleft() for _ in range(len(self._queue))]
            try:
                self._write(batch)
            except Exception:  # pylint: disable=broad-exception-caught  # a bug stops recording, never the exporter
                logger.exception("recording stopped after an unexpected error")
                self._give_up()
            if stopping:
                self._close()
                return

    def _write(self, lines: list[tuple[float, bytes]]) -> None:
        """Appends ``lines`` and a sync flush, in the file of their hour."""
        if not lines or self._stopped:
            return
        try:
            for when, line in lines:
                if self._file is None or _hour(when) != self._file_hour:
                    self._open(when)
                self._emit(self._compressor.compress(line))
            self._emit(self._compressor.flush(zlib.Z_SYNC_FLUSH))
            self._file.flush()
            self._keep_within_bounds()
        except OSError as exc:
            logger.error("recording stopped: cannot write to %s: %s", self.directory, exc.strerror or exc)
            self._give_up()

    def _give_up(self) -> None:
        """Stops recording for good, counting one error."""
        self._stopped = True
        self._queue.clear()
        with self._lock:
            self._errors += 1
        self._close()

    def _emit(self, data: bytes) -> None:
        self._file.write(data)
        with self._lock:
            self._recorded_bytes += len(data)

    def _open(self, when: float) -> None:
        """Starts a new file, named by ``when``, with its header."""
        self._close()
        self.directory.mkdir(parents=True, exist_ok=True)
        name, number = file_name(when), 0
        while True:
            try:
                self._file = open(self.directory / name, "xb")  # pylint: disable=consider-using-with  # see _close
                break
            except FileExistsError:  # two starts within a second
                number += 1
                name = file_name(when).replace(".jsonl.gz", f"-{number}.jsonl.gz")
        self._file_name, self._file_hour = name, _hour(when)
        self._compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, 31)  # gzip
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "exporter": __version__,
            "started": when,
            "run": self._run_started,
            "settings": self.settings,
        }
        self._emit(self._compressor.compress(json.dumps(header, separators=(",", ":")).encode() + b"\n"))

    def _close(self) -> None:
        if self._file is None:
            return
        try:
            self._emit(self._compressor.flush(zlib.Z_FINISH))
            self._file.close()
        except OSError:
            pass  # what was synced before reads back
        self._file = None
        self._file_name = ""

    def _files(self) -> list[Path]:
        """The recording's files, oldest first."""
        return sorted((path for path in self.directory.iterdir() if FILE_NAME.fullmatch(path.name)), key=_time_order)

    def _keep_within_bounds(self) -> None:
        """Deletes the oldest whole files while the directory holds more than ``max_bytes``."""
        files = self._files()
        sizes = {path: path.stat().st_size for path in files}
        total = sum(sizes.values())
        for path in files:
            if total <= self.max_bytes or path.name == self._file_name:
                break
            path.unlink()
            total -= sizes[path]
            logger.info("recording: deleted %s to stay within --record-max-bytes %d", path.name, self.max_bytes)


def read_recording(path: Union[str, Path], whole: bool = False) -> Iterator[dict[str, Any]]:
    """Every line of the recording file ``path``, decoded, headers
    included; a last line cut short (by a crash, or a truncated copy) is
    left out, or with ``whole`` raises. Raises ``RecordingError`` naming
    the file and the line for anything else that is not a recording."""
    path = Path(path)
    number = 0
    for text, complete in _lines(path):
        number += 1
        if not complete:
            if whole:
                raise RecordingError(
                    f"{path}: line {number}: cut short (the file was truncated, or its recorder killed while "
                    "writing it); --skip-bad reads the file up to it"
                )
            return
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise RecordingError(f"{path}: line {number}: not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise RecordingError(f"{path}: line {number}: not a recording's line")
        header = number == 1 or "format" in record  # files joined (cat a.gz b.gz) keep their headers
        if header and (record.get("format") != FORMAT or record.get("version") != FORMAT_VERSION):
            raise RecordingError(f"{path}: line {number}: not a {FORMAT} of version {FORMAT_VERSION}")
        if not header and (why := _malformed(record)) is not None:
            raise RecordingError(f"{path}: line {number}: {why}")
        yield record


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _malformed(record: dict[str, Any]) -> Optional[str]:
    """What makes ``record`` no line of a recording (see the module's
    docstring), or None."""
    if not _number(record.get("t")):
        return "no receive time t"
    if "ws" in record:
        number = record["ws"]
        whole = isinstance(number, int) and not isinstance(number, bool) and isinstance(record.get("msg"), str)
        return None if whole else "a websocket message needs a connection number ws and a text msg"
    if "rest" in record:
        whole = all(isinstance(record.get(name), str) for name in ("rest", "query", "body"))
        return None if whole else "a REST answer needs the texts rest, query and body"
    if "cycle" in record:
        cycle = record["cycle"]
        whole = (
            isinstance(cycle, dict)
            and isinstance(cycle.get("n"), int)
            and not isinstance(cycle["n"], bool)
            and _number(cycle.get("clock"))
            and _number(cycle.get("time"))
            and (cycle.get("books") is None or isinstance(cycle["books"], dict))
            and all(update_id is None or isinstance(update_id, int) for update_id in (cycle["books"] or {}).values())
        )
        return None if whole else "a cycle needs its number n, clock, time and the update id of each book"
    return "neither a websocket message, a REST answer nor a cycle"


def recording_files(paths: Iterable[Union[str, Path]]) -> list[Path]:
    """The files of ``paths`` (files, or directories of recording files),
    in time order: by name, which is the UTC time of the first line.
    RecordingError for a path that is neither."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [child for child in path.iterdir() if FILE_NAME.fullmatch(child.name)]
            if not found:
                raise RecordingError(f"{path}: holds no recording file (binance-<UTC time>Z.jsonl.gz)")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise RecordingError(f"{path}: no such file or directory")
    return sorted(dict.fromkeys(files), key=_time_order)


def _time_order(path: Path) -> tuple[str, int, str]:
    """Where a file comes in its recording: by the time in its name, then
    its number (``-1``, ``-2`` …: a start in the same second)."""
    match = FILE_NAME.fullmatch(path.name)
    return (match[1], int(match[2] or 0), str(path)) if match else (path.name, 0, str(path))


def read_recordings(paths: Iterable[Union[str, Path]], skip_bad: bool = False) -> Iterator[dict[str, Any]]:
    """Every line of the recording files of ``paths`` (see
    ``recording_files``), in order. Every file's header is checked
    before the first line is given. A file that is not a recording, a
    bad line, or a last line cut short raises ``RecordingError`` naming
    the file and the line; with ``skip_bad`` it is logged and the rest of
    that file skipped."""
    files = recording_files(paths)
    good = []
    for file in files:
        try:
            next(read_recording(file), None)
            good.append(file)
        except RecordingError as exc:
            if not skip_bad:
                raise
            logger.warning("skipped: %s", exc)
    for file in good:
        try:
            yield from read_recording(file, whole=True)
        except RecordingError as exc:
            if not skip_bad:
                raise
            logger.warning("the rest of the file skipped: %s", exc)


def _lines(path: Path) -> Iterator[tuple[bytes, bool]]:
    """The lines of a gzip file of one or more members, each with whether
    it is complete; a file cut short ends in an incomplete line."""
    try:
        file = open(path, "rb")  # pylint: disable=consider-using-with  # closed below
    except OSError as exc:
        raise RecordingError(f"{path}: {exc.strerror or exc}") from exc
    with file:
        decompressor = zlib.decompressobj(31)
        pending, line, error = b"", 0, None
        while chunk := file.read(READ_CHUNK):
            while chunk:
                try:
                    pending += decompressor.decompress(chunk)
                except zlib.error as exc:
                    error = exc  # after the lines before it
                    break
                chunk = b""
                if decompressor.eof:  # the end of a member: the next one starts in what is left
                    chunk, decompressor = decompressor.unused_data, zlib.decompressobj(31)
            *complete, pending = pending.split(b"\n")
            for text in complete:
                line += 1
                yield text, True
            if error:
                raise RecordingError(f"{path}: line {line + 1}: not gzip-compressed JSON lines ({error})") from error
            if len(pending) > MAX_LINE_BYTES:
                raise RecordingError(f"{path}: line {line + 1}: longer than {MAX_LINE_BYTES} bytes")
        if pending:
            yield pending, False
