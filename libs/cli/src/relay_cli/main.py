"""``relay``: operator commands."""

from __future__ import annotations

import asyncio
import getpass
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from relay_cli import audit as deliveries_audit
from relay_cli import dlq as dead_letters
from relay_cli import replay as bulk
from relay_cli.batches import GracefulStop, batch_progress, show_wait
from relay_cli.dev import run_dev
from relay_cli.sync import sync_app
from relay_cli.trigger import DEFAULT_API_URL, Criterion, TriggerFailedError, trigger_integrations
from relay_platform.tenants import ConfigError, hash_api_key, load_tenants

app = typer.Typer(help="Recipe Relay operator tool.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")
dlq = typer.Typer(help="Dead letters (deliveries.dead.v1): list and replay.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")
app.add_typer(sync_app, name="sync")

REASON_WIDTH = 60


@keys.command("hash")
def keys_hash(
    key: str | None = typer.Argument(None, help="The API key; prompted for (not echoed) when omitted."),
) -> None:
    """Print the SHA-256 hash to put under ``api-keys[].sha256`` in a tenant file."""
    raw = key if key is not None else getpass.getpass("API key: ")
    if not raw:
        raise typer.BadParameter("the key must not be empty")
    typer.echo(hash_api_key(raw))


@app.command("dev")
def dev(
    port: int = typer.Option(8080, help="Port of the ingest API."),
    var: Path = typer.Option(Path("var"), help="Directory for the embedded stack's data and logs."),
    demo: bool = typer.Option(True, help="Start local servers for the demo tenant's destinations."),
) -> None:
    """Run the whole suite on this machine (embedded broker, SQLite, local storage); Ctrl-C stops it."""
    root = Path.cwd()
    if not (root / "services").is_dir():
        raise typer.BadParameter("run from the repository root (the folder with services/)")
    raise typer.Exit(asyncio.run(run_dev(root, var.resolve(), port, demo=demo)))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain, aligned text table (no colours: output is often piped or pasted into tickets)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [headers, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command("trigger")
def trigger(
    *,
    order_number: str | None = typer.Option(None, "--order-number", help="Re-run the order(s) with this number."),
    order_id: str | None = typer.Option(None, "--order-id", help="Re-run the order with this ID."),
    recipe_id: str | None = typer.Option(
        None, "--recipe-id", help="Re-run every order using this recipe, and the raw recipe feed."
    ),
    integration: list[str] | None = typer.Option(
        None, "--integration", help="Only this integration ID (repeatable); default: every enabled one."
    ),
    api: str = typer.Option(DEFAULT_API_URL, "--api", envvar="RELAY_API_URL", help="Base URL of the ingest API."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="RELAY_API_KEY",
        show_default=False,
        help="API key with order-tracking permission (prefer the env variable: it stays out of shell history).",
    ),
) -> None:
    """Trigger integrations again for an order or a recipe (seed 000 "Trigger Integrations")."""
    criteria: tuple[tuple[Criterion, str | None], ...] = (
        ("orderNumber", order_number),
        ("orderId", order_id),
        ("recipeId", recipe_id),
    )
    given = [(name, value) for name, value in criteria if value is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --order-number, --order-id or --recipe-id")
    if not api_key:
        raise typer.BadParameter("an API key is required: set RELAY_API_KEY or pass --api-key")
    criterion, value = given[0]
    try:
        triggered = asyncio.run(trigger_integrations(api, api_key, criterion, value, integration or ()))
    except TriggerFailedError as error:
        raise fail(str(error)) from error
    rows = [
        [
            t.trigger_id,
            t.feed,
            t.recipe_id,
            t.order_number or "-",
            t.order_id or "-",
            t.item_id or "-",
            ",".join(t.integration_ids),
        ]
        for t in triggered
    ]
    typer.echo(table(["TRIGGER", "FEED", "RECIPE", "ORDER NO", "ORDER ID", "ITEM", "INTEGRATIONS"], rows))
    typer.echo(f"{len(triggered)} trigger(s) published")


@app.command("audit")
def audit(
    *,
    older_than: str = typer.Option(
        deliveries_audit.DEFAULT_OLDER_THAN,
        "--older-than",
        help="Deadline: whole seconds or a duration (30s, 15m, 2h, 1d, 1h30m). 0 lists everything in flight.",
    ),
    limit: int = typer.Option(
        deliveries_audit.DEFAULT_LIMIT, "--limit", min=1, max=deliveries_audit.MAX_LIMIT, help="Show at most this many."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON answer instead of a table."),
    api: str = typer.Option(DEFAULT_API_URL, "--api", envvar="RELAY_API_URL", help="Base URL of the ingest API."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="RELAY_API_KEY",
        show_default=False,
        help="API key with the admin permission (prefer the env variable: it stays out of shell history).",
    ),
) -> None:
    """Deliveries of the key's tenant that have not ended within --older-than, and why.

    Exit status: 0 when none are listed, 1 when some are (for cron and tests), 2 when the audit could not be read.
    """
    if not api_key:
        raise typer.BadParameter("an API key is required: set RELAY_API_KEY or pass --api-key")
    try:
        result = asyncio.run(deliveries_audit.fetch_audit(api, api_key, older_than=older_than, limit=limit))
    except deliveries_audit.AuditFailedError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    if as_json:
        typer.echo(json.dumps(result.document, indent=2))
    else:
        rows = [
            [
                d.last_change,
                d.order_number or "-",
                d.order_id or "-",
                d.recipe_id,
                d.integration,
                d.type,
                d.status,
                str(d.attempts),
                d.delivery_id,
                deliveries_audit.one_line(d.reason, deliveries_audit.REASON_WIDTH),
            ]
            for d in result.deliveries
        ]
        if rows:
            headers = ["LAST CHANGE", "ORDER NO", "ORDER ID", "RECIPE", "INTEGRATION", "TYPE", "STATUS", "ATTEMPTS"]
            typer.echo(table([*headers, "DELIVERY", "REASON"], rows))
        more = f" (more not shown: raise --limit above {limit})" if result.truncated else ""
        typer.echo(
            f"{len(rows)} delivery(ies) of tenant {result.tenant} not ended within {older_than} "
            f"(unchanged since before {result.cutoff}){more}"
        )
    raise typer.Exit(1 if result.deliveries else 0)


def _bootstrap_option() -> str:
    option: str = typer.Option(
        dead_letters.DEFAULT_BOOTSTRAP, "--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers."
    )
    return option


@dlq.command("list")
def dlq_list(
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many (the newest)."),
    topic_filter: str | None = typer.Option(
        None, "--topic-filter", help="Only source topics containing this text (or matching this glob)."
    ),
    bootstrap: str = _bootstrap_option(),
) -> None:
    """One row per dead letter (payloads are never shown: they may hold order data)."""
    try:
        letters = asyncio.run(dead_letters.list_dead_letters(bootstrap, limit=limit, topic_filter=topic_filter))
    except dead_letters.DlqError as error:
        raise fail(str(error)) from error
    rows = [
        [
            d.position,
            d.time.isoformat(timespec="seconds"),
            d.source_topic or "?",
            d.message.service if d.message else "?",
            d.message.error_class if d.message else "<unreadable>",
            dead_letters.summary(d.message.reason if d.message else d.problem or "", REASON_WIDTH),
        ]
        for d in letters
    ]
    typer.echo(table(["POSITION", "TIME", "SOURCE TOPIC", "SERVICE", "ERROR", "REASON"], rows))
    typer.echo(f"{len(letters)} dead letter(s)")


@dlq.command("replay")
def dlq_replay(
    positions: list[str] | None = typer.Argument(
        None, metavar="PARTITION:OFFSET", help="Positions as shown by `relay dlq list`.", show_default=False
    ),
    replay_all: bool = typer.Option(False, "--all", help="Replay every dead letter (of --source-topic)."),
    source_topic: str | None = typer.Option(None, "--source-topic", help="With --all: only this source topic."),
    bootstrap: str = _bootstrap_option(),
    tenants_file: Path = typer.Option(
        Path("config/dev.yaml"),
        "--tenants-file",
        envvar="RELAY_TENANTS_FILE",
        help="Tenant file naming the tenants' OMS topics, whose dead letters may be replayed too.",
    ),
) -> None:
    """Re-publish dead letters' original payloads to their source topics, with their original keys."""
    try:
        wanted = [dead_letters.parse_position(p) for p in positions or []]
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    if bool(wanted) == replay_all:
        raise typer.BadParameter("give PARTITION:OFFSET positions or --all (one of the two)")
    if source_topic is not None and not replay_all:
        raise typer.BadParameter("--source-topic goes with --all")

    async def run() -> list[dead_letters.Replayed]:
        letters = await dead_letters.read_dead_letters(bootstrap)
        chosen = dead_letters.choose(letters, wanted, replay_all=replay_all, source_topic=source_topic)
        return await dead_letters.replay(bootstrap, chosen, oms_topics=oms_topics)

    try:
        oms_topics = tuple(load_tenants(tenants_file).oms_topics()) if tenants_file.is_file() else ()
    except ConfigError as error:
        raise fail(str(error)) from error
    try:
        replayed = asyncio.run(run())
    except dead_letters.DlqError as error:
        raise fail(str(error)) from error
    rows = [[r.position, r.topic, r.key or "-", str(r.size), f"{r.partition}:{r.offset}"] for r in replayed]
    typer.echo(table(["FROM", "TO TOPIC", "KEY", "BYTES", "NEW POSITION"], rows))
    typer.echo(f"{len(replayed)} dead letter(s) replayed")


def _instant_option(value: str, option: str, now: datetime) -> datetime:
    try:
        return bulk.parse_instant(value, now)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=f"'{option}'") from error


def _replay_selection(since: str, until: str | None, integration: str | None, status: str) -> bulk.Selection:
    """The window as RFC 3339 UTC instants; relative values count back from the local clock, read once."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = _instant_option(since, "--since", now)
    end = _instant_option(until, "--until", now) if until is not None else None
    if end is not None and end < start:
        raise typer.BadParameter(
            f"{bulk.rfc3339(end)} is before --since ({bulk.rfc3339(start)})", param_hint="'--until'"
        )
    if status not in bulk.STATUSES:
        raise typer.BadParameter(f"only {', '.join(bulk.STATUSES)} can be replayed", param_hint="'--status'")
    if integration is not None and not integration.strip():
        raise typer.BadParameter("must not be empty (leave it out for all integrations)", param_hint="'--integration'")
    return bulk.Selection(
        since=bulk.rfc3339(start),
        until=bulk.rfc3339(end) if end is not None else None,
        integration=integration,
        status=status,
    )


def _replay_failed(error: bulk.ReplayFailedError) -> typer.Exit:
    done = error.done
    typer.echo(f"error: {error}", err=True)
    if done.replayed or done.batches:
        typer.echo(f"done before the error: {done.text()}", err=True)
    typer.echo("Run the same command again to replay the rest: replayed deliveries are not sent twice.", err=True)
    return typer.Exit(130 if done.stopped else 1)


async def _run_replay(
    api: str, api_key: str, selection: bulk.Selection, *, rate: float, batch: int, expected: int
) -> bulk.ReplaySummary:
    """The batches with a progress bar on a terminal; Ctrl-C once stops after the current batch, twice at once."""
    console = Console(stderr=True)
    done = bulk.ReplaySummary()
    progress = batch_progress(console)
    bar = progress.add_task("Replaying", total=expected)

    def on_wait(seconds: float, why: str) -> None:
        show_wait(progress, bar, console, f"{why}: waiting {seconds:g} s to send the batch again")

    def on_batch(answer: bulk.Batch, so_far: bulk.ReplaySummary) -> None:
        # `matched` counts what matched before this batch: new failures in the window make the total grow.
        handled_now = so_far.replayed + so_far.skipped
        total = max(handled_now - answer.replayed - answer.skipped + answer.matched, handled_now)
        progress.update(bar, completed=handled_now, total=total, description="Replaying")

    stop = GracefulStop(console, "Stopping after the current batch (Ctrl-C again to stop at once).")
    client = bulk.ReplayClient(api, api_key, sleep=stop.sleep, on_wait=on_wait, stop=lambda: stop.requested)
    try:
        with stop, progress:
            async with client:
                return await bulk.replay_batches(
                    client,
                    selection,
                    rate=rate,
                    batch_size=batch,
                    stop=lambda: stop.requested,
                    on_batch=on_batch,
                    done=done,
                )
    except asyncio.CancelledError:
        done.stopped = True
        raise bulk.ReplayFailedError(
            "stopped at once: the batch in flight may or may not have been replayed", done
        ) from None


@app.command("replay")
def replay(
    *,
    since: str = typer.Option(
        ..., "--since", help="Start of the window: a duration back from now (30m, 2h, 1d) or an RFC 3339 instant."
    ),
    until: str | None = typer.Option(None, "--until", help="End of the window (same forms); default: now."),
    integration: str | None = typer.Option(None, "--integration", help="Only this integration ID; default: all."),
    status: str = typer.Option("failed", "--status", help="Which deliveries: failed (for good, dead-lettered)."),
    rate: float = typer.Option(
        bulk.DEFAULT_RATE, "--rate", help="At most this many deliveries re-triggered a second (spares the destination)."
    ),
    batch: int = typer.Option(bulk.DEFAULT_BATCH, "--batch", help=f"Deliveries per API call (1..{bulk.MAX_BATCH})."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be replayed."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (needed when not interactive)."),
    api: str = typer.Option(DEFAULT_API_URL, "--api", envvar="RELAY_API_URL", help="Base URL of the ingest API."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        "--key",
        envvar="RELAY_API_KEY",
        show_default=False,
        help="API key with the integrations:trigger permission (prefer the env variable: it stays out of history).",
    ),
) -> None:
    """Replay the deliveries that failed for good in a window (after an outage): a count first, then paced batches.

    Idempotent: a replayed delivery is not replayed again, so running it twice sends once per delivery.
    Exit status: 0 done (or nothing to do), 1 error, 2 usage or no confirmation, 130 stopped by Ctrl-C.
    """
    if not math.isfinite(rate) or rate <= 0:
        raise typer.BadParameter("must be a number of deliveries per second above 0", param_hint="'--rate'")
    if not 1 <= batch <= bulk.MAX_BATCH:
        raise typer.BadParameter(f"must be between 1 and {bulk.MAX_BATCH}", param_hint="'--batch'")
    selection = _replay_selection(since, until, integration, status)
    if not api_key:
        raise typer.BadParameter("an API key is required: set RELAY_API_KEY or pass --api-key")

    async def dry() -> int:
        async with bulk.ReplayClient(api, api_key) as client:
            return await bulk.count(client, selection)

    try:
        matched = asyncio.run(dry())
    except bulk.ReplayFailedError as error:
        raise fail(str(error)) from error
    typer.echo(selection.describe(matched))
    if dry_run:
        return
    if matched == 0:
        typer.echo("Nothing to replay.")
        return
    if not yes:
        if not sys.stdin.isatty():
            typer.echo("error: not a terminal, so nothing was replayed: add --yes to replay without asking", err=True)
            raise typer.Exit(2)
        noun = "delivery" if matched == 1 else "deliveries"
        typer.confirm(f"Replay {matched} {noun}, at most {rate:g} per second?", abort=True)
    try:
        summary = asyncio.run(_run_replay(api, api_key, selection, rate=rate, batch=batch, expected=matched))
    except bulk.ReplayFailedError as error:
        raise _replay_failed(error) from error
    typer.echo(summary.text())
    if summary.stopped:
        typer.echo("Stopped by Ctrl-C: run the same command again to replay the rest.")
        raise typer.Exit(130)
