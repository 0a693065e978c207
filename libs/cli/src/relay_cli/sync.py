"""``relay sync associations FILE``: a historical sync of order-to-recipe associations (seed 002) and order
lifecycle events through the batch API, resumable after an interruption (issue 14, seed 003).

The file (CSV with a header row, or JSON lines) is read once into memory: its SHA-256 is of exactly the bytes
parsed. Each line is validated here first, so one bad line is reported with its number and never rejects a whole
batch; columns and fields outside the API's allow-list (customer names, e-mails...) are dropped before anything is
sent, and their values are never printed. Lines go out in file order, in batches of one kind: associations to
``POST /api/v2/recipe/order``, lifecycle events (a JSON line with ``type``) to ``POST /api/v2/orders/events``; a
change of kind closes the batch, so an event never overtakes an earlier line.

After each batch the API confirms, a small state file (``FILE.relay-sync.json``) is replaced atomically: a rerun
skips the lines done, a rerun of a completed sync sends nothing, and a changed file is refused unless restarted.
A batch sent but not confirmed (an error, a second Ctrl-C) is sent again next time: the API dedupes it
(associations get a stable event ID from their business keys, lifecycle events from ``eventId`` or theirs).

Sleep, clock and the stop check are injected: tests assert on the waits it computes, never on wall time.
The API key goes only into the ``Authorization`` header: it is never printed, logged or put in a URL.
"""

from __future__ import annotations

import asyncio
import csv
import email.utils
import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import TextColumn

from relay_cli.batches import GracefulStop, batch_progress, show_wait
from relay_cli.trigger import DEFAULT_API_URL, api_error_message
from relay_contracts.oms_api import (
    ASSOCIATION_FIELDS,
    LIFECYCLE_FIELDS,
    LIFECYCLE_ITEM_FIELDS,
    OrderAssociation,
    OrderLifecycleEvent,
)

ASSOCIATIONS_PATH = "/api/v2/recipe/order"
EVENTS_PATH = "/api/v2/orders/events"
DEFAULT_BATCH = 100
MAX_BATCH = 1000
"""The ingest API's default ``INGEST_API_MAX_ITEMS`` (413 past it)."""
MAX_RETRIES = 8
"""Consecutive 429/503 answers for one batch before the run stops (state saved: a rerun resumes)."""
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
MAX_RETRY_AFTER_S = 600.0
"""A longer ``Retry-After`` is not waited out silently: the run stops and says so."""
MAX_REASONS = 50
"""Rejections kept with their reasons (in the state file and the summary); the count goes on past it."""
STATE_SUFFIX = ".relay-sync.json"
STATE_VERSION = 1
RETRIED_STATUSES = frozenset({429, 503})

Format = Literal["csv", "jsonl"]
Kind = Literal["association", "event"]
Sleep = Callable[[float], Awaitable[None]]
FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
PATHS: dict[Kind, str] = {"association": ASSOCIATIONS_PATH, "event": EVENTS_PATH}

# Exit codes (as `relay replay`): 1 an error (resumable), 2 usage, a changed file or an unreadable state, 130 Ctrl-C.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STOPPED = 130


class SyncFailedError(Exception):
    """The sync stopped; the message is safe to print (no key, no dropped value). ``summary`` is what was done."""

    def __init__(self, message: str, summary: SyncSummary | None = None, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.summary = summary
        self.exit_code = exit_code


# --- the API's shapes (relay_contracts.oms_api, the very models the API validates with), line by line --------

CSV_REQUIRED = ("recipeId", "orderNumber", "itemId", "itemQuantity")


# --- reading the file -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line to send: its (first) line number, kind and body (allow-listed fields only, values as in the file,
    so ``occurredAt`` stays the source's)."""

    line: int
    kind: Kind
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    reason: str

    def text(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Parsed:
    """One record of the file: a ``row`` or a ``rejection``; ``end`` is its last physical line (resume point)."""

    end: int
    row: Row | None = None
    rejection: Rejection | None = None


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    data: bytes
    format: Format
    sha256: str
    lines: int
    dropped_columns: tuple[str, ...] = ()


def detect_format(path: Path, given: str | None) -> Format:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise ValueError("must be csv or jsonl")
        return "csv" if given == "csv" else "jsonl"
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"cannot tell the format of {path.name}: name it .csv, .jsonl or .ndjson, or give --format")
    return found


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def load_source(path: Path, fmt: Format) -> SourceFile:
    """The file's bytes (read once: the hash is of what is parsed), hash and line count; ``OSError`` unreadable,
    ``ValueError`` for a CSV header without a required column."""
    data = path.read_bytes()
    dropped: tuple[str, ...] = ()
    if fmt == "csv":
        header = next(csv.reader(io.StringIO(_text(data), newline="")), [])
        missing = [name for name in CSV_REQUIRED if name not in header]
        if missing:
            raise ValueError(f"the CSV header has no column {', '.join(missing)} (seed 002's names are needed)")
        dropped = tuple(name for name in header if name not in ASSOCIATION_FIELDS)
    return SourceFile(path, data, fmt, hashlib.sha256(data).hexdigest(), count_lines(data), dropped)


def _text(data: bytes) -> str:
    # Bytes that are not UTF-8 become lone surrogates: the ID check then rejects that line alone, by number.
    return data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


def _validation_reason(error: ValidationError) -> str:
    # The messages only: pydantic's ``input`` would echo what may be personal data.
    first = error.errors(include_url=False)
    parts = ["/" + "/".join(str(p) for p in e["loc"]) + ": " + e["msg"] for e in first[:5]]
    more = f" (and {len(first) - 5} more)" if len(first) > 5 else ""
    return "; ".join(parts) + more


def check_record(line: int, record: object) -> Row | Rejection:
    """A decoded JSON line or CSV row: allow-listed and validated (a lifecycle event when it has ``type``)."""
    if not isinstance(record, dict):
        return Rejection(line, "must be a JSON object")
    kind: Kind = "event" if "type" in record else "association"
    if kind == "association":
        body = {k: v for k, v in record.items() if k in ASSOCIATION_FIELDS}
    else:
        body = {k: v for k, v in record.items() if k in LIFECYCLE_FIELDS}
        items = body.get("items")
        if isinstance(items, list):
            body["items"] = [
                {k: v for k, v in item.items() if k in LIFECYCLE_ITEM_FIELDS} if isinstance(item, dict) else item
                for item in items
            ]
    try:
        (OrderAssociation if kind == "association" else OrderLifecycleEvent).model_validate(body)
    except ValidationError as error:
        return Rejection(line, _validation_reason(error))
    return Row(line, kind, body)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _jsonl_records(data: bytes) -> Iterator[Parsed]:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.decode("utf-8", errors="surrogateescape").strip()
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text:
            continue
        try:
            record: object = json.loads(text, parse_constant=_no_constant)
        except ValueError as error:
            # json's messages name a position, never the text.
            message = str(error).split(":", 1)[0] if isinstance(error, json.JSONDecodeError) else str(error)
            yield Parsed(number, rejection=Rejection(number, f"not JSON: {message}"))
            continue
        checked = check_record(number, record)
        yield Parsed(number, row=checked) if isinstance(checked, Row) else Parsed(number, rejection=checked)


_WHOLE = re.compile(r"[+-]?[0-9]+")


def _csv_records(data: bytes) -> Iterator[Parsed]:
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    header = next(reader, [])
    first = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Parsed(reader.line_num, rejection=Rejection(first, f"not CSV: {error}"))
            first = reader.line_num + 1
            continue
        end, start, first = reader.line_num, first, reader.line_num + 1
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            yield Parsed(end, rejection=Rejection(start, f"{len(cells)} cells for {len(header)} columns"))
            continue
        record: dict[str, Any] = {}
        for name, value in zip(header, cells, strict=False):
            if name not in ASSOCIATION_FIELDS or (name == "orderId" and value == ""):
                continue  # PII and other columns never leave here; an empty orderId means "the order number"
            record[name] = value
        quantity = record.get("itemQuantity")
        if isinstance(quantity, str):
            if not _WHOLE.fullmatch(quantity.strip()):
                yield Parsed(end, rejection=Rejection(start, "/itemQuantity: must be a whole number"))
                continue
            record["itemQuantity"] = int(quantity.strip())
        checked = check_record(start, record)
        yield Parsed(end, row=checked) if isinstance(checked, Row) else Parsed(end, rejection=checked)


def records(source: SourceFile) -> Iterator[Parsed]:
    return _csv_records(source.data) if source.format == "csv" else _jsonl_records(source.data)


# --- batches --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Chunk:
    """One batch to send (maybe empty: rejections only) and the local rejections read with it; once confirmed,
    everything up to line ``end`` is done."""

    kind: Kind | None = None
    rows: list[Row] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    end: int = 0


def chunks(parsed: Iterator[Parsed], batch: int, *, after_line: int = 0) -> Iterator[tuple[Chunk, int]]:
    """Batches in file order, one kind each (a change of kind closes the batch), records ending at or before
    ``after_line`` skipped; each with how many records were skipped while reading it."""
    current, skipped = Chunk(), 0
    for record in parsed:
        if record.end <= after_line:
            skipped += 1
            continue
        row = record.row
        if row is not None and current.rows and (row.kind != current.kind or len(current.rows) >= batch):
            yield current, skipped
            current, skipped = Chunk(), 0
        if row is not None:
            current.kind = row.kind
            current.rows.append(row)
        elif record.rejection is not None:
            current.rejections.append(record.rejection)
        current.end = record.end
    if current.rows or current.rejections or skipped:
        yield current, skipped


# --- state ----------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SyncState:
    """What the state file holds: which file, how far, and the counters across runs."""

    path: str
    size: int
    sha256: str
    format: Format
    lines_done: int = 0
    batches: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: list[Rejection] = field(default_factory=list)
    completed: bool = False
    updated_at: str = ""

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(rejection)

    def document(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "file": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "format": self.format,
            "linesDone": self.lines_done,
            "batches": self.batches,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejections": [{"line": r.line, "reason": r.reason} for r in self.reasons],
            "completed": self.completed,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_document(cls, document: object) -> SyncState:
        if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
            raise ValueError("not a relay sync state file of this version")
        try:
            reasons = [Rejection(int(r["line"]), str(r["reason"])) for r in document["rejections"]]
            return cls(
                path=str(document["file"]),
                size=int(document["size"]),
                sha256=str(document["sha256"]),
                format=_format(document["format"]),
                lines_done=int(document["linesDone"]),
                batches=int(document["batches"]),
                sent=int(document["sent"]),
                accepted=int(document["accepted"]),
                rejected=int(document["rejected"]),
                reasons=reasons,
                completed=document["completed"] is True,
                updated_at=str(document.get("updatedAt", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError("a field is missing or unreadable") from error


def _format(value: object) -> Format:
    if value == "csv":
        return "csv"
    if value == "jsonl":
        return "jsonl"
    raise ValueError("unknown format")


def default_state_path(path: Path) -> Path:
    return path.with_name(path.name + STATE_SUFFIX)


def load_state(path: Path) -> SyncState | None:
    """The saved state, ``None`` without one; ``ValueError`` for a file that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return SyncState.from_document(json.loads(text))
    except ValueError as error:
        raise ValueError(f"{path} is not a readable sync state ({error})") from error


def save_state(path: Path, state: SyncState) -> None:
    """Write atomically (a temporary file beside it, then ``os.replace``): a crash leaves the old or the new one."""
    state.updated_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(state.document(), file, indent=1)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


# --- the calls ------------------------------------------------------------------------------------------------


def retry_wait(retry_after: str | None, retry: int, now: datetime | None = None) -> float:
    """Seconds before resending after a 429/503: ``Retry-After`` in seconds or as an HTTP date, else 1 s doubling
    per retry up to 30 s."""
    if retry_after is not None:
        text = retry_after.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None and when.tzinfo is not None:
                return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
        else:
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    return min(BACKOFF_FIRST_S * 2.0**retry, BACKOFF_MAX_S)


def pacing_wait(rows: int, rate: float | None, elapsed: float) -> float:
    """After a batch of ``rows``, the wait that keeps the run at ``rate`` rows a second (``None``: no pacing)."""
    return 0.0 if rate is None else max(0.0, rows / rate - elapsed)


def pointed_rows(text: str, size: int) -> dict[int, str] | None:
    """From a 400's problems, batch index -> reasons (``/3/itemQuantity`` is the 4th row); ``None`` when a problem
    points at no row (the batch as a whole is refused)."""
    try:
        document: Any = json.loads(text)
    except ValueError:
        return None
    problems = document.get("problems") if isinstance(document, dict) else None
    if not isinstance(problems, list) or not problems:
        return None
    found: dict[int, str] = {}
    for problem in problems:
        pointer = problem.get("pointer") if isinstance(problem, dict) else None
        match = re.fullmatch(r"/([0-9]+)(/.*)?", pointer) if isinstance(pointer, str) else None
        if match is None or int(match.group(1)) >= size:
            return None
        reason = f"{match.group(2) or '/'}: {problem.get('message', 'refused')}"
        index = int(match.group(1))
        found[index] = f"{found[index]}; {reason}" if index in found else reason
    return found


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    retry_after: str | None


@dataclass(slots=True)
class SyncClient:
    """One HTTP session to the ingest API for a whole run, with the retry policy for 429/503."""

    api_url: str
    api_key: str
    sleep: Sleep = asyncio.sleep
    timeout_s: float = 60.0
    max_retries: int = MAX_RETRIES
    on_wait: Callable[[float, str], None] | None = None
    stop: Callable[[], bool] = lambda: False
    """Checked after each retry wait: a stop asked for meanwhile ends the run there, the batch not confirmed."""
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SyncClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, path: str, body: list[dict[str, Any]]) -> Answer:
        assert self._session is not None, "use SyncClient in `async with`"
        base = self.api_url.rstrip("/")
        try:
            async with self._session.post(
                base + path, json=body, headers={"Authorization": f"Bearer {self.api_key}"}
            ) as response:
                return Answer(
                    response.status, await response.text(errors="replace"), response.headers.get("Retry-After")
                )
        except (aiohttp.ClientError, TimeoutError) as failure:
            raise SyncFailedError(f"cannot reach the API at {base}: {type(failure).__name__}") from failure

    async def send(self, kind: Kind, body: list[dict[str, Any]]) -> Answer:
        """The batch, resent after each 429/503's wait (at most ``max_retries`` in a row); any other answer."""
        retry = 0
        while True:
            answer = await self._post(PATHS[kind], body)
            if answer.status not in RETRIED_STATUSES:
                return answer
            message = api_error_message(answer.status, answer.text, answer.retry_after)
            if retry >= self.max_retries:
                raise SyncFailedError(f"{message} (gave up after {retry} retries in a row)")
            wait = retry_wait(answer.retry_after, retry)
            if wait > MAX_RETRY_AFTER_S:
                raise SyncFailedError(f"{message}: the API asks to wait longer than {MAX_RETRY_AFTER_S:.0f} s")
            retry += 1
            if self.on_wait is not None:
                self.on_wait(wait, f"HTTP {answer.status} (retry {retry} of {self.max_retries})")
            await self.sleep(wait)
            if self.stop():
                raise SyncFailedError(f"stopped while waiting to resend after {message}", exit_code=EXIT_STOPPED)


def _accepted(answer: Answer) -> int:
    try:
        document: Any = json.loads(answer.text)
    except ValueError:
        document = None
    count = document.get("accepted") if isinstance(document, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise SyncFailedError(f"the API answered {answer.status} without an `accepted` count")
    return count


# --- the run --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class SyncSummary:
    """What the file's sync came to: ``state`` holds the totals across runs, the rest is this run's."""

    state: SyncState
    lines: int
    dropped_columns: tuple[str, ...] = ()
    skipped: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    stopped: bool = False
    dry_run: bool = False
    already_completed: bool = False

    def text(self) -> str:
        s = self.state
        lines = [f"lines read: {self.lines} ({self.state.path})"]
        if self.already_completed:
            lines.append(f"already completed ({s.updated_at}): nothing sent")
        if self.skipped:
            lines.append(f"skipped, already done by an earlier run: {self.skipped}")
        if self.dry_run:
            lines.append(f"valid, would be sent: {self.sent} (dry run: nothing sent)")
        else:
            lines.append(f"sent: {self.sent} in {self.batches} batch(es) this run; {s.sent} in all")
            lines.append(f"accepted: {self.accepted} this run; {s.accepted} in all")
        rejected = self.rejected if self.dry_run else s.rejected
        lines.append(f"rejected: {rejected}" + ("" if self.dry_run else f" in all ({self.rejected} this run)"))
        lines += [f"  {r.text()}" for r in s.reasons]
        if rejected > len(s.reasons):
            lines.append(f"  (and {rejected - len(s.reasons)} more not listed)")
        if self.dropped_columns:
            lines.append(f"columns dropped, never sent: {', '.join(self.dropped_columns)}")
        lines.append(f"time: {self.seconds:.1f} s")
        if not self.dry_run:
            status = "completed" if s.completed else f"stopped after line {s.lines_done} of {self.lines}"
            lines.append(f"status: {status}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Options:
    batch: int = DEFAULT_BATCH
    rate: float | None = None
    state_path: Path | None = None
    restart: bool = False
    dry_run: bool = False


def start_state(source: SourceFile, options: Options) -> tuple[SyncState, bool]:
    """The state to continue from, and whether it is a completed sync of this very file.

    Raises ``SyncFailedError`` (exit 2) for a state of another version of the file or an unreadable one."""
    state_path = options.state_path or default_state_path(source.path)
    fresh = SyncState(str(source.path), len(source.data), source.sha256, source.format)
    if options.restart or options.dry_run:
        return fresh, False
    try:
        saved = load_state(state_path)
    except ValueError as error:
        raise SyncFailedError(f"{error}: delete it or add --restart", exit_code=EXIT_USAGE) from error
    if saved is None:
        return fresh, False
    if saved.sha256 != source.sha256 or saved.size != len(source.data):
        raise SyncFailedError(
            f"{source.path} changed since {state_path} was written ({saved.size} bytes then, {len(source.data)} now; "
            "the SHA-256 differs): nothing sent. Add --restart to sync it from the start (what was sent before is "
            "deduplicated by the API)",
            exit_code=EXIT_USAGE,
        )
    saved.path = str(source.path)
    return saved, saved.completed


async def run_sync(
    client: SyncClient | None,
    source: SourceFile,
    options: Options,
    *,
    clock: Callable[[], float] = time.monotonic,
    stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] | None = None,
    summary: SyncSummary | None = None,
) -> SyncSummary:
    """Batches in file order until the end or ``stop()`` (checked between batches: a batch is never cut).

    ``client`` may be ``None`` only for a dry run. ``summary`` (made here by default) fills as batches are
    confirmed: the caller still has it when the run fails or is cancelled."""
    state, completed = start_state(source, options)
    state_path = options.state_path or default_state_path(source.path)
    if summary is None:
        summary = SyncSummary(state, source.lines, source.dropped_columns, dry_run=options.dry_run)
    summary.state = state
    begun = clock()
    if completed:
        summary.already_completed = True
        summary.skipped = sum(1 for _ in records(source))
        return summary
    last_started, last_rows = begun, 0
    try:
        for chunk, skipped in chunks(records(source), options.batch, after_line=state.lines_done):
            summary.skipped += skipped
            rejected = list(chunk.rejections)
            if chunk.rows and not options.dry_run:
                assert client is not None
                # Paced before a batch, not after one: the last batch is not followed by a useless wait.
                pause = pacing_wait(last_rows, options.rate, clock() - last_started)
                if pause > 0:
                    await client.sleep(pause)
                    if stop():
                        summary.stopped = True
                        return summary
                last_started, last_rows = clock(), len(chunk.rows)
                accepted, refused = await _send_chunk(client, chunk)
                rejected += refused
                summary.sent += len(chunk.rows) - len(refused)
                summary.accepted += accepted
                summary.batches += 1
                state.sent += len(chunk.rows) - len(refused)
                state.accepted += accepted
                state.batches += 1
            else:
                summary.sent += len(chunk.rows)
            rejected.sort(key=lambda r: r.line)
            for rejection in rejected:
                summary.rejected += 1
                state.reject(rejection)
            state.lines_done = max(state.lines_done, chunk.end)
            if not options.dry_run:
                save_state(state_path, state)
            if on_progress is not None:
                on_progress(state.lines_done)
            if stop():
                summary.stopped = True
                return summary
        # Lines after the last record (blank ones) are done too.
        state.lines_done = source.lines
        state.completed = True
        if not options.dry_run:
            save_state(state_path, state)
        if on_progress is not None:
            on_progress(state.lines_done)
        return summary
    except SyncFailedError as error:
        error.summary = summary
        summary.stopped = error.exit_code == EXIT_STOPPED
        raise
    finally:
        summary.seconds = clock() - begun


async def _send_chunk(client: SyncClient, chunk: Chunk) -> tuple[int, list[Rejection]]:
    """Send one batch: the API's ``accepted`` count and the rows it refused (a 400 pointing at rows: those are
    rejected and the rest is sent once more)."""
    assert chunk.kind is not None
    rows = chunk.rows
    refused: list[Rejection] = []
    for attempt in range(2):
        answer = await client.send(chunk.kind, [r.body for r in rows])
        if answer.status in (200, 202):
            return _accepted(answer), refused
        message = api_error_message(answer.status, answer.text, answer.retry_after)
        pointed = pointed_rows(answer.text, len(rows)) if answer.status == 400 and attempt == 0 else None
        if pointed is None:
            hint = " (lower --batch)" if answer.status == 413 else ""
            lines = f"lines {rows[0].line}-{rows[-1].line}"
            raise SyncFailedError(f"the API refused the batch of {lines}: {message}{hint}")
        refused += [Rejection(rows[i].line, f"refused by the API: {reason}") for i, reason in pointed.items()]
        rows = [row for i, row in enumerate(rows) if i not in pointed]
        if not rows:
            return 0, refused
    raise AssertionError("unreachable")  # pragma: no cover


# --- the command ----------------------------------------------------------------------------------------------

sync_app = typer.Typer(help="Historical sync through the batch API (resumable).", no_args_is_help=True)


async def _run_with_progress(
    api: str, api_key: str, source: SourceFile, options: Options, console: Console
) -> SyncSummary:
    """The run with a progress bar on a terminal; Ctrl-C once stops after the current batch, twice at once."""
    summary = SyncSummary(
        SyncState(str(source.path), len(source.data), source.sha256, source.format),
        source.lines,
        source.dropped_columns,
        dry_run=options.dry_run,
    )
    progress = batch_progress(console, TextColumn("lines {task.fields[rate]}"))
    bar = progress.add_task("Syncing", total=source.lines, rate="")
    begun = time.monotonic()

    def on_progress(done: int) -> None:
        elapsed = max(time.monotonic() - begun, 1e-6)
        progress.update(bar, completed=done, description="Syncing", rate=f"{done / elapsed:.0f}/s")

    def on_wait(seconds: float, why: str) -> None:
        show_wait(progress, bar, console, f"{why}: waiting {seconds:g} s to resend the batch")

    stop = GracefulStop(console, "Stopping after the current batch is confirmed (Ctrl-C again to stop at once).")
    client = SyncClient(api, api_key, sleep=stop.sleep, on_wait=on_wait, stop=lambda: stop.requested)
    try:
        with stop, progress:
            async with client:
                return await run_sync(
                    client, source, options, stop=lambda: stop.requested, on_progress=on_progress, summary=summary
                )
    except asyncio.CancelledError:
        summary.stopped = True
        raise SyncFailedError(
            "stopped at once: the batch in flight is sent again by the next run (the API dedupes it)",
            summary,
            EXIT_STOPPED,
        ) from None


@sync_app.command("associations")
def associations(
    file: Path = typer.Argument(..., help="CSV (header row, seed 002 column names) or JSON lines.", show_default=False),
    *,
    api: str = typer.Option(DEFAULT_API_URL, "--api", envvar="RELAY_API_URL", help="Base URL of the ingest API."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="RELAY_API_KEY",
        show_default=False,
        help="API key with order-tracking permission (prefer the env variable: it stays out of shell history).",
    ),
    batch: int = typer.Option(DEFAULT_BATCH, "--batch", help=f"Lines per API call (1..{MAX_BATCH})."),
    rate: float | None = typer.Option(None, "--rate", help="At most this many lines sent a second (default: no cap)."),
    state: Path | None = typer.Option(None, "--state", help=f"The state file (default: FILE{STATE_SUFFIX})."),
    restart: bool = typer.Option(False, "--restart", help="Ignore the state file: sync the file from the start."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only validate and count: nothing is sent or saved."),
    file_format: str | None = typer.Option(
        None, "--format", help="csv or jsonl (default: from the extension .csv, .jsonl, .ndjson)."
    ),
) -> None:
    """Send a file of associations (and lifecycle events) through the batch API, in file order, resumably.

    Each line is checked first (a bad one is reported by line number, not sent); columns outside seed 002's are
    dropped unread. 429/503 are waited out (Retry-After) and the batch resent. Progress is saved after each
    confirmed batch: run the same command again to resume; a completed file sends nothing.
    Exit status: 0 done, 1 error (resumable), 2 usage or a changed file, 130 stopped by Ctrl-C.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise typer.BadParameter(f"must be between 1 and {MAX_BATCH}", param_hint="'--batch'")
    if rate is not None and (not math.isfinite(rate) or rate <= 0):
        raise typer.BadParameter("must be a number of lines per second above 0", param_hint="'--rate'")
    try:
        fmt = detect_format(file, file_format)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--format'") from error
    if not api_key and not dry_run:
        raise typer.BadParameter("an API key is required: set RELAY_API_KEY or pass --api-key")
    console = Console(stderr=True)
    try:
        source = load_source(file, fmt)
    except OSError as error:
        typer.echo(f"error: cannot read {file}: {error.strerror or type(error).__name__}", err=True)
        raise typer.Exit(EXIT_USAGE) from error
    except ValueError as error:
        typer.echo(f"error: {file}: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from error
    options = Options(batch=batch, rate=rate, state_path=state, restart=restart, dry_run=dry_run)
    try:
        if dry_run:
            summary = asyncio.run(run_sync(None, source, options))
        else:
            summary = asyncio.run(_run_with_progress(api, api_key or "", source, options, console))
    except SyncFailedError as error:
        typer.echo(f"error: {error}", err=True)
        if error.summary is not None:
            typer.echo(error.summary.text(), err=True)
        if error.exit_code != EXIT_USAGE:
            typer.echo("Run the same command again to resume: what was confirmed is not sent again.", err=True)
        raise typer.Exit(error.exit_code) from error
    typer.echo(summary.text())
    if summary.stopped:
        typer.echo("Stopped by Ctrl-C: run the same command again to resume.")
        raise typer.Exit(EXIT_STOPPED)
