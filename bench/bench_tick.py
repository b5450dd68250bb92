"""Benchmark one tick of the engine against raw sqlite3 writing the same rows.

Prepares a fresh SQLite database (migrated, one live workflow "send email, wait 1 day, send
email", N subscribed contacts, N due enrollments at the first step), copies it for every run,
and times in a child process each:

- engine: ``workflows.engine.advance.advance_due(now)`` over all N enrollments;
- reference: plain ``sqlite3`` that reads the due enrollments and writes the same rows with
  ``executemany`` (deliveries, step logs, step-metric increments, enrollment updates) in one
  transaction, with the same pragmas (WAL, synchronous=NORMAL, foreign_keys=ON) and indexes.

Each child runs alone, so its ru_maxrss is its own peak. Both runs must leave identical rows
(compared by digest), which keeps the reference honest. Dispatch (render + locmem backend) is
timed separately on one engine result, for information only.

Run from the repository root:  .venv/bin/python bench/bench_tick.py [--enrollments 100000]
"""

import argparse
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
WAIT = timedelta(days=1)
TARGET_RATIO = 0.5


def setup_django(database: Path, var_dir: Path) -> None:
    """Point the settings at ``database`` and start Django. Call it before importing any model."""
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ["MKTAUTO_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("MKTAUTO_LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mktauto.settings")
    sys.path.insert(0, str(REPO))

    import django

    django.setup()


def max_rss_bytes() -> int:
    """Return this process's peak resident set size in bytes."""
    # ru_maxrss survives execve on Linux, so a child started by a large parent would report the
    # parent's peak. VmHWM belongs to the new address space only.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # Without /proc ru_maxrss is the best figure. macOS reports it in bytes, Linux and the BSDs in KiB.
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max_rss if sys.platform == "darwin" else max_rss * 1024


def naive(moment: datetime) -> str:
    """Format a UTC datetime the way Django's SQLite backend stores it."""
    return str(moment.astimezone(UTC).replace(tzinfo=None))


# Columns the reference run sets itself. Every other column gets the model's default, which the
# parent writes to INPUTS_FILE beside the databases (with MKTAUTO_TIME_ZONE), so the reference
# needs no Django and keeps working when a migration adds a column.
REFERENCE_COLUMNS = {
    "campaigns_delivery": (
        "contact_id",
        "template_id",
        "channel",
        "transactional",
        "enrollment_id",
        "step_id",
        "visit",
        "status",
        "next_attempt_at",
        "created_at",
    ),
    "workflows_steplog": ("enrollment_id", "step_id", "visit", "outcome", "reason", "at"),
    "campaigns_stepmetric": ("step_id", "day", "entered"),
}
INPUTS_FILE = "reference-inputs.json"


# Preparation (parent process, Django on the template database).


def prepare(database: Path, var_dir: Path, enrollments: int) -> None:
    setup_django(database, var_dir)

    from django.core.management import call_command
    from django.db import connection

    from campaigns.models import MessageTemplate
    from contacts.models import ConsentStatus, Contact
    from workflows.models import Enrollment, Step, Workflow

    call_command("migrate", verbosity=0, interactive=False)

    first = MessageTemplate.objects.create(
        name="Welcome", subject="Welkom {{ first_name }}", body="Hallo {{ first_name|default:'daar' }}, welkom bij de winkel."
    )
    second = MessageTemplate.objects.create(name="Follow-up", subject="Nog iets?", body="Hallo {{ first_name }}.")
    workflow = Workflow.objects.create(name="Bench welcome", trigger_event="signed_up", status=Workflow.Status.LIVE)
    send = Step.objects.create(workflow=workflow, position=0, key="email-1", kind=Step.Kind.SEND_EMAIL, template=first)
    Step.objects.create(workflow=workflow, position=1, key="wait-1", kind=Step.Kind.WAIT, wait_days=WAIT.days)
    Step.objects.create(workflow=workflow, position=2, key="email-2", kind=Step.Kind.SEND_EMAIL, template=second)

    Contact.objects.bulk_create(
        (
            Contact(email=f"contact{number}@example.com", first_name=f"Klant {number}", email_consent=ConsentStatus.SUBSCRIBED)
            for number in range(enrollments)
        ),
        batch_size=5000,
    )
    contact_ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    due_at = NOW - timedelta(minutes=1)
    Enrollment.objects.bulk_create(
        (
            Enrollment(
                workflow=workflow,
                contact_id=contact_id,
                state=Enrollment.State.ACTIVE,
                step=send,
                visit=1,
                next_run_at=due_at,
                enrolled_at=due_at,
            )
            for contact_id in contact_ids
        ),
        batch_size=5000,
    )

    write_reference_inputs(database.with_name(INPUTS_FILE))

    # Fold the WAL into the main file so a plain file copy carries every row.
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def write_reference_inputs(path: Path) -> None:
    from django.apps import apps
    from django.conf import settings
    from django.db import connection

    defaults: dict[str, dict[str, Any]] = {}
    for model in apps.get_models():
        table = model._meta.db_table
        if table not in REFERENCE_COLUMNS:
            continue
        defaults[table] = {
            field.column: field.get_db_prep_save(field.get_default(), connection)
            for field in model._meta.concrete_fields
            if not field.primary_key and field.column not in REFERENCE_COLUMNS[table]
        }
    # Decimal defaults become strings, as Django's SQLite adapter stores them.
    path.write_text(json.dumps({"defaults": defaults, "time_zone": settings.MKTAUTO_TIME_ZONE}, default=str))


# Engine run (child process).


def run_engine(database: Path, var_dir: Path, batch_size: int | None, trace: bool) -> dict[str, Any]:
    setup_django(database, var_dir)

    from django.conf import settings

    from campaigns.models import Delivery, StepMetric
    from workflows.engine.advance import advance_due
    from workflows.models import Enrollment, Step, StepLog

    due = Enrollment.objects.filter(state=Enrollment.State.ACTIVE, next_run_at__lte=NOW).count()
    batch_size = batch_size or settings.MKTAUTO_TICK_BATCH_SIZE
    # One more batch than needed, so the last call finds nothing and advance_due stops by itself.
    max_batches = math.ceil(due / batch_size) + 1

    baseline = max_rss_bytes()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    advanced = advance_due(NOW, batch_size=batch_size, max_batches=max_batches)
    elapsed = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    tracemalloc.stop()
    peak = max_rss_bytes()

    last_step = Step.objects.get(key="email-2")
    moved_on = Enrollment.objects.filter(state=Enrollment.State.ACTIVE, step=last_step, visit=3, next_run_at__gt=NOW).count()
    return {
        "elapsed": elapsed,
        "enrollments": due,
        "advanced": advanced,
        "deliveries": Delivery.objects.count(),
        "step_logs": StepLog.objects.count(),
        "moved_on": moved_on,
        "entered": list(StepMetric.objects.order_by("step_id").values_list("entered", flat=True)),
        "batch_size": batch_size,
        "debug": settings.DEBUG,
        "rss_baseline": baseline,
        "rss_peak": peak,
        "traced_peak": traced_peak,
    }


# Reference run (child process, no Django).


def reference_insert(table: str, defaults: dict[str, dict[str, Any]], suffix: str = "") -> tuple[str, tuple]:
    """Return the INSERT statement for ``table`` and the default values that end each of its rows."""
    columns = [*REFERENCE_COLUMNS[table], *defaults[table]]
    names = ", ".join(f'"{column}"' for column in columns)
    placeholders = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({names}) VALUES ({placeholders}) {suffix}", tuple(defaults[table].values())


def wait_until(zone_name: str) -> datetime:
    """Return the end of the one-day wait: the same wall time on the next calendar day in ``zone_name``."""
    zone = ZoneInfo(zone_name)
    return datetime.combine(NOW.astimezone(zone).date() + timedelta(days=WAIT.days), NOW.astimezone(zone).time(), tzinfo=zone)


def run_reference(database: Path, trace: bool) -> dict[str, Any]:
    inputs = json.loads(database.with_name(INPUTS_FILE).read_text())
    defaults, default_zone = inputs["defaults"], inputs["time_zone"]
    delivery_sql, delivery_tail = reference_insert("campaigns_delivery", defaults)
    log_sql, log_tail = reference_insert("workflows_steplog", defaults)
    metric_sql, metric_tail = reference_insert(
        "campaigns_stepmetric", defaults, "ON CONFLICT (step_id, day) DO UPDATE SET entered = entered + excluded.entered"
    )

    connection = sqlite3.connect(database, isolation_level=None)
    # The same pragmas Django applies on this project's connections.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")

    steps = dict(connection.execute("SELECT key, id FROM workflows_step"))
    send_id, wait_id, last_id = steps["email-1"], steps["wait-1"], steps["email-2"]
    template_id, template_name, channel, transactional = connection.execute(
        "SELECT t.id, t.name, t.channel, t.transactional FROM campaigns_messagetemplate t "
        "JOIN workflows_step s ON s.template_id = t.id WHERE s.id = ?",
        (send_id,),
    ).fetchone()
    now = naive(NOW)
    day = NOW.date().isoformat()

    baseline = max_rss_bytes()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()

    connection.execute("BEGIN IMMEDIATE")
    rows = connection.execute(
        "SELECT e.id, e.contact_id, e.visit, c.time_zone FROM workflows_enrollment e "
        "JOIN workflows_workflow w ON w.id = e.workflow_id "
        "JOIN contacts_contact c ON c.id = e.contact_id "
        "WHERE e.state = 'active' AND e.next_run_at <= ? AND w.status = 'live' "
        "AND c.email IS NOT NULL AND c.email_suppressed_at IS NULL AND c.email_consent = 'subscribed' "
        "ORDER BY e.next_run_at, e.id",
        (now,),
    ).fetchall()
    # The wait counts calendar days in each contact's time zone, so its end depends on the zone.
    untils = {zone_name: wait_until(zone_name or default_zone) for zone_name in {row[3] for row in rows}}

    connection.executemany(
        delivery_sql,
        [
            (contact_id, template_id, channel, transactional, id, send_id, visit, "queued", now, now, *delivery_tail)
            for id, contact_id, visit, _zone_name in rows
        ],
    )
    connection.executemany(
        log_sql, [(id, send_id, visit, "queued", template_name, now, *log_tail) for id, _contact_id, visit, _zone_name in rows]
    )
    connection.executemany(
        log_sql,
        [
            (id, wait_id, visit + 1, "waited", f"until {untils[zone_name].isoformat()}", now, *log_tail)
            for id, _contact_id, visit, zone_name in rows
        ],
    )
    connection.executemany(metric_sql, [(send_id, day, len(rows), *metric_tail), (wait_id, day, len(rows), *metric_tail)])
    connection.executemany(
        "UPDATE workflows_enrollment SET step_id = ?, visit = ?, next_run_at = ? WHERE id = ?",
        [(last_id, visit + 2, naive(untils[zone_name]), id) for id, _contact_id, visit, zone_name in rows],
    )
    connection.execute("COMMIT")

    elapsed = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    tracemalloc.stop()
    peak = max_rss_bytes()
    connection.close()
    return {
        "elapsed": elapsed,
        "enrollments": len(rows),
        "rss_baseline": baseline,
        "rss_peak": peak,
        "traced_peak": traced_peak,
    }


# Dispatch run (child process, on a database the engine has advanced).


def run_dispatch(database: Path, var_dir: Path, limit: int) -> dict[str, Any]:
    os.environ["MKTAUTO_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    setup_django(database, var_dir)

    from django.core import mail

    from campaigns.dispatch import dispatch_due

    mail.outbox = []
    started = time.perf_counter()
    handled = dispatch_due(NOW, limit=limit)
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "handled": handled, "sent": len(mail.outbox)}


# Comparing results.

DIGEST_QUERIES = {
    "deliveries": "SELECT contact_id, template_id, channel, transactional, enrollment_id, step_id, visit, status, "
    "next_attempt_at, attempts, to_address, subject, message_id, error, created_at, sent_at FROM campaigns_delivery "
    "ORDER BY enrollment_id, step_id, visit",
    "step logs": "SELECT enrollment_id, step_id, visit, outcome, reason, at FROM workflows_steplog "
    "ORDER BY enrollment_id, visit, outcome",
    "step metrics": "SELECT step_id, day, entered, sent, skipped, failed, opened, clicked, unsubscribed, bounced, "
    "complained, converted, CAST(revenue AS REAL), exited FROM campaigns_stepmetric ORDER BY step_id, day",
    "enrollments": "SELECT id, state, step_id, visit, next_run_at, finished_at, exit_reason FROM workflows_enrollment ORDER BY id",
}


def table_digests(database: Path) -> dict[str, str]:
    connection = sqlite3.connect(database)
    digests = {}
    for name, query in DIGEST_QUERIES.items():
        digest = hashlib.sha256()
        for row in connection.execute(query):
            digest.update(repr(row).encode())
        digests[name] = digest.hexdigest()
    connection.close()
    return digests


# Parent process: orchestration and report.


def run_child(mode: str, database: Path, var_dir: Path, options: argparse.Namespace, trace: bool = False) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--database", str(database), "--var-dir", str(var_dir)]
    if options.batch_size:
        command += ["--batch-size", str(options.batch_size)]
    if trace:
        command.append("--trace")
    if mode == "dispatch":
        command += ["--dispatch", str(options.dispatch)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            _("The %(mode)s run failed with exit code %(code)s:\n%(stderr)s")
            % {"mode": mode, "code": completed.returncode, "stderr": completed.stderr}
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def check_runs(
    engine: dict[str, Any], reference: dict[str, Any], expected: int, engine_db: Path, reference_db: Path
) -> list[str]:
    """Return what differs from the expected outcome: counts on the engine side, rows between both sides."""
    problems = []
    for name, expected_value in (
        ("advanced", expected),
        ("deliveries", expected),
        ("moved_on", expected),
        ("step_logs", 2 * expected),
        ("entered", [expected, expected]),
    ):
        if engine[name] != expected_value:
            problems.append(
                _("Engine %(name)s: expected %(expected)s, got %(got)s.")
                % {"name": name, "expected": expected_value, "got": engine[name]}
            )
    if reference["enrollments"] != expected:
        problems.append(
            _("Reference enrollments: expected %(expected)s, got %(got)s.")
            % {"expected": expected, "got": reference["enrollments"]}
        )

    engine_digests, reference_digests = table_digests(engine_db), table_digests(reference_db)
    for table in DIGEST_QUERIES:
        if engine_digests[table] != reference_digests[table]:
            problems.append(_("Table %(table)s: the engine and the reference wrote different rows.") % {"table": table})
    return problems


def mebibytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def time_runs(workdir: Path, template: Path, var_dir: Path, options: argparse.Namespace) -> list[str]:
    """Time ``options.repeat`` engine and reference runs on copies of ``template``, print the report, return problems."""
    engine_results, reference_results, problems = [], [], []
    for attempt in range(1, options.repeat + 1):
        engine_db = workdir / f"engine-{attempt}.sqlite3"
        reference_db = workdir / f"reference-{attempt}.sqlite3"
        shutil.copyfile(template, engine_db)
        shutil.copyfile(template, reference_db)
        # Flush the copies now, or the first checkpoint's fsync in the timed run waits for them.
        os.sync()

        engine = run_child("engine", engine_db, var_dir, options)
        reference = run_child("reference", reference_db, var_dir, options)
        problems += check_runs(engine, reference, options.enrollments, engine_db, reference_db)
        engine_results.append(engine)
        reference_results.append(reference)
        print(
            _("Run %(attempt)s: engine %(engine).2f s, reference %(reference).2f s, ratio %(ratio).0f%%.")
            % {
                "attempt": attempt,
                "engine": engine["elapsed"],
                "reference": reference["elapsed"],
                "ratio": 100 * reference["elapsed"] / engine["elapsed"],
            }
        )

        # The first engine result stays for the dispatch run; the rest only take disk space.
        if attempt > 1 and not options.keep:
            engine_db.unlink()
            reference_db.unlink()

    print_summary(engine_results, reference_results, options)
    return problems


def print_summary(
    engine_results: list[dict[str, Any]], reference_results: list[dict[str, Any]], options: argparse.Namespace
) -> None:
    engine_time = median([result["elapsed"] for result in engine_results])
    reference_time = median([result["elapsed"] for result in reference_results])
    # Each run writes 1 delivery, 2 step logs and 1 enrollment update per enrollment, plus one
    # step-metric row for each of the two steps.
    rows_written = 4 * options.enrollments + 2

    print()
    print(
        _("Python %(python)s, SQLite %(sqlite)s, %(cpus)s CPUs.")
        % {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "cpus": os.cpu_count()}
    )
    print(
        _("Tick over %(count)s due enrollments (send email, then wait), batch size %(batch)s, DEBUG=%(debug)s:")
        % {"count": options.enrollments, "batch": engine_results[0]["batch_size"], "debug": engine_results[0]["debug"]}
    )
    for label, elapsed, results in (
        (_("engine (advance_due)"), engine_time, engine_results),
        (_("reference (sqlite3 executemany)"), reference_time, reference_results),
    ):
        print(
            _(
                "  %(label)-32s %(seconds)6.2f s %(enrollments)7.0f enrollments/s %(rows)7.0f rows/s, peak RSS %(rss)s (%(baseline)s before)"
            )
            % {
                "label": label,
                "seconds": elapsed,
                "enrollments": options.enrollments / elapsed,
                "rows": rows_written / elapsed,
                "rss": mebibytes(max(result["rss_peak"] for result in results)),
                "baseline": mebibytes(max(result["rss_baseline"] for result in results)),
            }
        )
    # Other work on the machine slows whichever side runs at the time, so the ratio is taken per
    # run (the two sides run back to back) and the median of those is the result.
    ratios = [
        reference["elapsed"] / engine["elapsed"] for engine, reference in zip(engine_results, reference_results, strict=True)
    ]
    print(
        _(
            "  ratio engine / reference: %(ratio).0f%%, median of %(runs)s runs (%(low).0f%% to %(high).0f%%), target %(target).0f%%"
        )
        % {
            "ratio": 100 * median(ratios),
            "runs": len(ratios),
            "low": 100 * min(ratios),
            "high": 100 * max(ratios),
            "target": 100 * TARGET_RATIO,
        }
    )
    print(
        _("  load average (1, 5, 15 min) at the end: %(load)s") % {"load": ", ".join(f"{value:.2f}" for value in os.getloadavg())}
    )


def measure_heap(workdir: Path, template: Path, var_dir: Path, options: argparse.Namespace) -> None:
    # tracemalloc slows Python code several times over, so these runs give memory, not time.
    shutil.copyfile(template, workdir / "engine-traced.sqlite3")
    shutil.copyfile(template, workdir / "reference-traced.sqlite3")
    engine = run_child("engine", workdir / "engine-traced.sqlite3", var_dir, options, trace=True)
    reference = run_child("reference", workdir / "reference-traced.sqlite3", var_dir, options, trace=True)
    print(
        _("  Python heap peak (tracemalloc, separate untimed runs): engine %(engine)s, reference %(reference)s")
        % {"engine": mebibytes(engine["traced_peak"]), "reference": mebibytes(reference["traced_peak"])}
    )


def measure_dispatch(engine_db: Path, var_dir: Path, options: argparse.Namespace) -> None:
    dispatched = run_child("dispatch", engine_db, var_dir, options)
    print(
        _(
            "Dispatch (extra, not in the ratio): %(sent)s of %(handled)s deliveries rendered and sent to the locmem "
            "backend in %(seconds).2f s, %(rate).0f deliveries/s."
        )
        % {
            "sent": dispatched["sent"],
            "handled": dispatched["handled"],
            "seconds": dispatched["elapsed"],
            "rate": dispatched["handled"] / dispatched["elapsed"],
        }
    )


def main(options: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="mktauto-bench-tick-"))
    var_dir = workdir / "var"
    var_dir.mkdir()
    template = workdir / "prepared.sqlite3"
    try:
        started = time.perf_counter()
        prepare(template, var_dir, options.enrollments)
        print(
            _("Prepared %(count)s due enrollments in %(seconds).1f s in %(path)s.")
            % {"count": options.enrollments, "seconds": time.perf_counter() - started, "path": workdir}
        )

        problems = time_runs(workdir, template, var_dir, options)
        if options.trace:
            measure_heap(workdir, template, var_dir, options)
        if options.dispatch:
            measure_dispatch(workdir / "engine-1.sqlite3", var_dir, options)
    finally:
        if not options.keep:
            shutil.rmtree(workdir)

    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def child(options: argparse.Namespace) -> int:
    database, var_dir = Path(options.database), Path(options.var_dir)
    if options.child == "engine":
        result = run_engine(database, var_dir, options.batch_size, options.trace)
    elif options.child == "reference":
        result = run_reference(database, options.trace)
    else:
        result = run_dispatch(database, var_dir, options.dispatch)
    print(json.dumps(result))
    return 0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=100_000, help="due enrollments to advance (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side; the report shows the median")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="enrollments per locked batch (default: MKTAUTO_TICK_BATCH_SIZE)"
    )
    parser.add_argument("--dispatch", type=int, default=2000, help="deliveries to dispatch after the run; 0 skips it")
    parser.add_argument("--trace", action="store_true", help="also measure the Python heap peak with tracemalloc")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder, whose path the first line prints")
    parser.add_argument("--child", choices=("engine", "reference", "dispatch"), help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--var-dir", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.enrollments < 1:
        parser.error(f"--enrollments must be at least 1, got {options.enrollments}")
    if options.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {options.repeat}")
    return options


if __name__ == "__main__":
    arguments = parse_arguments()
    sys.exit(child(arguments) if arguments.child else main(arguments))
