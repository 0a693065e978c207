"""``make bench``: runs every figure script of ``bench/`` several times and prints one table, each figure beside its
limit measured in the same run; ``--write`` rewrites ``docs/benchmarks.md`` with it and the machine's description.

Run: ``uv run --frozen python bench/run.py [--runs N] [--smoke] [--write] [--only SCRIPT,...] [--json FILE]``.

Every script in ``SCRIPTS`` runs ``--runs`` times (default 3), the scripts taking turns (run 1 of each, then run 2
of each...), so a slow spell of the machine weighs on all of them; each prints its figures as JSON lines, the last
lines of its stdout. A figure's median over the runs is compared with its goal; min and max show the spread, the
limit column the median of the limit measured beside it. A script that is missing, fails, times out or prints a
malformed figure is shown as failed and the exit code is 1 (nothing is skipped silently); ``--write`` then writes
nothing. ``--smoke`` runs every script once, all at once, in its tiniest mode (``--smoke``) and only checks that it
printed well-formed figures: ``tests/bench/test_bench_smoke.py`` runs that in ``make test``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import statistics
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOC = ROOT / "docs" / "benchmarks.md"
# Every figure script, in the order they run; each must print at least one figure.
SCRIPTS = (
    "e2e.py",
    "limits_ingest.py",
    "limits_hop.py",
    "limits_ticket.py",
    "limits_destinations.py",
    "limits_scaleout.py",
)
FULL_TIMEOUT_S = 1800.0
SMOKE_TIMEOUT_S = 300.0
EN_DASH = "\u2013"
FIELDS: dict[str, type | tuple[type, ...]] = {
    "figure": str,
    "label": str,
    "value": (int, float),
    "unit": str,
    "limit_label": (str, type(None)),
    "limit_value": (int, float, type(None)),
    "goal": str,
    "better": str,
}
_GOAL = re.compile(r"^\s*(>=|<=|>|<|≥|≤)\s*([0-9][0-9,]*(?:\.[0-9]+)?)")
HISTORY = "## History"


def say(line: str) -> None:
    sys.stderr.write(f"[run {time.strftime('%H:%M:%S')}] {line}\n")
    sys.stderr.flush()


# --- running the scripts ----------------------------------------------------------------------------------------------


@dataclass
class ScriptRun:
    script: str
    seconds: float
    figures: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def check_figure(item: object) -> str | None:
    """What is wrong with one figure line, or ``None``."""
    if not isinstance(item, dict):
        return "not a JSON object"
    for name, kinds in FIELDS.items():
        if name not in item:
            return f"no {name!r}"
        if not isinstance(item[name], kinds) or isinstance(item[name], bool):
            return f"{name!r} is {item[name]!r}"
    if item["better"] not in {"higher", "lower"}:
        return f"better is {item['better']!r}"
    for name in ("value", "limit_value"):
        number = item[name]
        if number is not None and (not math.isfinite(number) or number < 0):
            return f"{name} is {number}"
    return None


def trailing_figures(stdout: str) -> list[dict[str, Any]]:
    """The JSON figure lines at the end of a script's stdout (the lines before them are not figures)."""
    found: list[dict[str, Any]] = []
    for line in reversed(stdout.strip().splitlines()):
        try:
            item = json.loads(line)
        except ValueError:
            break
        if not isinstance(item, dict) or "figure" not in item:
            break
        found.append(item)
    return found[::-1]


async def run_script(script: str, *, smoke: bool, timeout_s: float) -> ScriptRun:
    path = BENCH / script
    started = time.monotonic()
    if not path.is_file():
        return ScriptRun(script, 0.0, error=f"{path.relative_to(ROOT)} does not exist")
    argv = [sys.executable, str(path), *(["--smoke"] if smoke else [])]
    process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await process.communicate()
    except TimeoutError:
        # SIGTERM first: the scripts stop what they started on it.
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(60):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
        return ScriptRun(script, time.monotonic() - started, error=f"timed out after {timeout_s:.0f} s")
    seconds = time.monotonic() - started
    if process.returncode != 0:
        return ScriptRun(script, seconds, error=f"exited with {process.returncode}")
    figures = trailing_figures(out.decode(errors="replace"))
    if not figures:
        return ScriptRun(script, seconds, error="printed no figures")
    for item in figures:
        problem = check_figure(item)
        if problem is not None:
            return ScriptRun(script, seconds, error=f"malformed figure {item.get('figure', '?')}: {problem}")
    return ScriptRun(script, seconds, figures)


# --- the table --------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One figure over every run."""

    first: dict[str, Any]
    script: str
    values: list[float] = field(default_factory=list)
    limits: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def limit(self) -> float | None:
        return statistics.median(self.limits) if self.limits else None

    def met(self) -> str:
        """``yes``/``no`` when the goal states a bound on the value, else ``—``."""
        match = _GOAL.match(self.first["goal"])
        if match is None:
            return "—"
        bound = float(match.group(2).replace(",", ""))
        value = self.median
        ok = {
            ">=": value >= bound, "≥": value >= bound, ">": value > bound,
            "<=": value <= bound, "≤": value <= bound, "<": value < bound,
        }[match.group(1)]  # fmt: skip
        return "yes" if ok else "no"


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def collect(runs: list[ScriptRun]) -> tuple[list[Row], list[str]]:
    """Rows in first-seen order, and what went wrong (failed runs, a figure printed by two scripts)."""
    rows: dict[str, Row] = {}
    problems = [f"{r.script}: {r.error}" for r in runs if r.error is not None]
    for run in runs:
        for item in run.figures:
            row = rows.get(item["figure"])
            if row is None:
                row = rows[item["figure"]] = Row(item, run.script)
            elif row.script != run.script:
                problems.append(f"{item['figure']} is printed by both {row.script} and {run.script}")
                continue
            row.values.append(float(item["value"]))
            if item["limit_value"] is not None:
                row.limits.append(float(item["limit_value"]))
    return list(rows.values()), sorted(set(problems), key=problems.index)


def cells(row: Row) -> list[str]:
    unit = row.first["unit"]
    spread = f"{number(min(row.values))}{EN_DASH}{number(max(row.values))}" if len(row.values) > 1 else "—"
    limit = row.limit
    limit_text = f"{number(limit)} ({row.first['limit_label']})" if limit is not None else "—"
    return [row.first["figure"], f"{number(row.median)} {unit}", spread, limit_text, row.first["goal"], row.met()]


HEADER = ["figure", "median", f"min{EN_DASH}max", "limit (same run)", "goal", "met?"]


def text_table(rows: list[Row], failed: list[str]) -> str:
    body = [cells(row) for row in rows] + [[f"FAILED {p}", "", "", "", "", ""] for p in failed]
    widths = [max(len(line[i]) for line in [HEADER, *body]) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [HEADER, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        figure_id, median, spread, limit, goal, met = cells(row)
        label = f"{row.first['label']} `{figure_id}`"
        lines.append("| " + " | ".join([label, median, spread, limit, goal, met]).replace("\n", " ") + " |")
    return "\n".join(lines)


# --- docs/benchmarks.md -----------------------------------------------------------------------------------------------


def machine() -> list[str]:
    """The machine's description: CPU model and count, RAM, kernel, Python, Tansu."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, flags=re.MULTILINE)
    ram = f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown"
    return [
        f"CPU: {models[0] if models else platform.processor() or 'unknown'} x {os.cpu_count()} (logical CPUs)",
        f"RAM: {ram}",
        f"Kernel: {platform.system()} {platform.release()}",
        f"Python: {platform.python_version()} ({platform.python_implementation()})",
        f"Broker: {tansu_version()} (durable: `s3://` storage in SeaweedFS, as `make run` starts it)",
    ]


def tansu_version() -> str:
    import subprocess

    try:
        from relay_devservers.kafka import tansu_binary

        done = subprocess.run(  # noqa: S603 - our own binary, no shell
            [str(tansu_binary()), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return "Tansu (version unknown)"
    return done.stdout.strip().replace("tansu", "Tansu", 1) or "Tansu (version unknown)"


def how_measured(script: str) -> str:
    """The script's docstring (without its ``Run:`` line), as Markdown: it says what each of its figures is."""
    path = BENCH / script
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree) or ""
    paragraphs = [p for p in doc.split("\n\n") if not p.startswith("Run:")]
    text = "\n\n".join(paragraphs).replace("``", "`")
    return f"### `bench/{script}`\n\n{text}"


def history(previous: str) -> str:
    """What the current file keeps: its ``## History`` section as it is; the first time, every section of the old
    file below one History heading (a sentence about ``make bench`` dropped: it no longer holds)."""
    if HISTORY in previous:
        return previous[previous.index(HISTORY) :].rstrip() + "\n"
    body = previous.split("\n", 1)[1] if previous.startswith("# ") else previous
    kept = [p for p in body.strip().split("\n\n") if "make bench" not in p]
    demoted = [re.sub(r"^## ", "### ", p) for p in kept]
    intro = "Earlier figures, measured by hand with the scripts each section names (not part of `make bench`)."
    return "\n\n".join([HISTORY, intro, *demoted]).rstrip() + "\n"


def prose(text: str) -> str:
    """A paragraph wrapped as the repository's Markdown is (120 columns)."""
    return textwrap.fill(text, width=116, break_on_hyphens=False, break_long_words=False)


def document(rows: list[Row], runs: int, started: datetime, seconds: float, load: tuple[float, float, float]) -> str:
    previous = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    scripts = list(dict.fromkeys(row.script for row in rows))
    parts = [
        "# Benchmarks",
        prose(
            "Written by `make bench` (`uv run --frozen python bench/run.py --write`): every figure of issue 11 on the "
            "embedded stack, each beside its limit measured in the same run. Broker, services, destination servers and "
            "load generators share this one machine, so the figures are lower bounds for a deployment that gives each "
            "its own CPU."
        ),
        "## Machine and run",
        "\n".join(
            f"- {line}"
            for line in [
                *machine(),
                f"Date: {started.strftime('%Y-%m-%d %H:%M UTC')}; load average at the start "
                f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)",
                f"Command: `make bench` = `uv run --frozen python bench/run.py --write --runs {runs}` "
                f"({seconds / 60:.0f} min)",
            ]
        ),
        "## Figures",
        prose(
            f"Median of {runs} runs, with the lowest and highest; the limit is the median of the limit measured in "
            "the same run as each figure; *met?* compares the median with the goal where the goal is a bound."
        ),
        markdown_table(rows),
        "## How measured",
        *(how_measured(script) for script in scripts),
        history(previous).rstrip(),
    ]
    return "\n\n".join(parts) + "\n"


# --- main -------------------------------------------------------------------------------------------------------------


async def run_all(scripts: list[str], *, runs: int, smoke: bool) -> list[ScriptRun]:
    """Every script ``runs`` times, taking turns."""
    timeout_s = SMOKE_TIMEOUT_S if smoke else FULL_TIMEOUT_S
    results: list[ScriptRun] = []
    if smoke:
        # A smoke run checks only that every script still ends with well-formed figures, and much of each is waiting
        # (servers starting, consumer groups joining): all at once, on their own ports and directories, it takes
        # about as long as the slowest one instead of their sum. Real runs never overlap.
        say(f"smoke: {', '.join(scripts)} at once")
        results = list(await asyncio.gather(*(run_script(s, smoke=True, timeout_s=timeout_s) for s in scripts)))
        for result in results:
            outcome = f"{len(result.figures)} figures" if result.error is None else f"FAILED: {result.error}"
            say(f"smoke: {result.script} {outcome} in {result.seconds:.0f} s")
        return results
    for n in range(1, runs + 1):
        for script in scripts:
            say(f"run {n}/{runs}: {script}{' --smoke' if smoke else ''}")
            result = await run_script(script, smoke=smoke, timeout_s=timeout_s)
            outcome = f"{len(result.figures)} figures" if result.error is None else f"FAILED: {result.error}"
            say(f"run {n}/{runs}: {script} {outcome} in {result.seconds:.0f} s")
            results.append(result)
    return results


def main(args: argparse.Namespace) -> int:
    scripts = [s if s.endswith(".py") else f"{s}.py" for s in args.only.split(",")] if args.only else list(SCRIPTS)
    runs = 1 if args.smoke else args.runs
    started, began, load = datetime.now(UTC), time.monotonic(), os.getloadavg()
    results = asyncio.run(run_all(scripts, runs=runs, smoke=args.smoke))
    seconds = time.monotonic() - began
    rows, problems = collect(results)
    sys.stdout.write(text_table(rows, problems) + "\n")
    sys.stdout.flush()
    if args.json:
        report = [{"script": r.script, "seconds": r.seconds, "error": r.error, "figures": r.figures} for r in results]
        Path(args.json).write_text(json.dumps({"runs": report, "problems": problems}, indent=1))
    if problems:
        say(f"{len(problems)} problem(s); exit code 1" + ("; docs/benchmarks.md not written" if args.write else ""))
        return 1
    if args.write:
        DOC.write_text(document(rows, runs, started, seconds, load))
        say(f"wrote {DOC.relative_to(ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of every script (median, min, max); default 3")
    parser.add_argument("--smoke", action="store_true", help="every script once in its tiniest mode; checks only")
    parser.add_argument("--write", action="store_true", help="rewrite docs/benchmarks.md (not with --smoke/--only)")
    parser.add_argument("--only", help="comma-separated scripts of bench/ to run instead of all (e.g. limits_hop)")
    parser.add_argument("--json", help="also write every run's figures and errors to this file (for the smoke test)")
    args = parser.parse_args(argv)
    if args.write and (args.smoke or args.only):
        parser.error("--write records a full run of every script: not with --smoke or --only")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
