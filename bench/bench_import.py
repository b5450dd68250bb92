"""Benchmark: the contact import against a plain django-import-export ModelResource.

Run from the project root:

    .venv/bin/python bench/bench_import.py [--rows 100000] [--reference-rows N]

The script writes a CSV of realistic Dutch contacts with some bad rows, then imports it in
separate processes, each into a fresh SQLite database in a temporary MKTAUTO_VAR_DIR:

- project: SpreadsheetCSV + ContactResource, the path the admin and import_contacts use;
- project, Dutch Excel copy: the same rows as Windows-1252 with ";" and Dutch headers
  (both project imports run ``--repeat`` times and the median wall time is reported);
- reference: django-import-export's CSV format and a ModelResource for Contact with default
  options (every column matched by field name, one save() per row).

The file's headers are Contact field names where both importers understand them (email,
first_name, last_name, phone, city, zip, country_code). The reference ignores the "Tags",
"Accepts Email Marketing" and "Geboortedatum" columns and normalises no email or phone, so it
does less work per row than the project import. About 1 row in 50 is bad (an invalid email, an
invalid phone, no identity, a duplicate email), and django-import-export rolls the whole
reference import back because those rows fail; its time still covers every row.

Each run times reading the bytes, building the dataset and importing it, with DEBUG off, as
wall time and as the process's CPU time. On a shared machine the wall time depends on the other
processes, so both are printed with the load average. Peak memory is the process's maximum
resident set size (getrusage), which includes Django itself.
"""

import argparse
import csv
import io
import json
import os
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIRST_NAMES = [
    "Daan",
    "Sem",
    "Lucas",
    "Levi",
    "Finn",
    "Noah",
    "Milan",
    "Jesse",
    "Bram",
    "Thijs",
    "Lars",
    "Ruben",
    "Sven",
    "Jan",
    "Pieter",
    "Kees",
    "Joris",
    "Gijs",
    "Hugo",
    "Teun",
    "Emma",
    "Julia",
    "Sophie",
    "Tess",
    "Anna",
    "Zoë",
    "Sara",
    "Eva",
    "Lotte",
    "Fleur",
    "Noor",
    "Saar",
    "Lieke",
    "Femke",
    "Anouk",
    "Chloë",
    "Renée",
    "Inès",
    "Maaike",
    "Ilse",
]
PREFIXES = ("", "", "", "", "van", "de", "van der", "van den", "ter", "'t", "van de")
LAST_NAMES = [
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Dekker",
    "Brouwer",
    "Dijkstra",
    "Vermeulen",
    "Koster",
    "Berg",
    "Vries",
    "Boer",
    "Dijk",
    "Wit",
    "Groot",
    "Leeuw",
    "Graaf",
    "Heuvel",
    "Linden",
    "Haan",
    "Wal",
    "Noël",
    "Müller",
    "Hart",
]
CITIES = (
    ("Amsterdam", "10"),
    ("Rotterdam", "30"),
    ("Utrecht", "35"),
    ("Den Haag", "25"),
    ("Eindhoven", "56"),
    ("Groningen", "97"),
    ("Zwolle", "80"),
    ("'s-Hertogenbosch", "52"),
    ("Leeuwarden", "89"),
    ("Maastricht", "62"),
)
TAGS = ("klant", "nieuwsbrief", "vip", "fietsen", "webshop", "beurs 2025", "b2b")
DOMAINS = ("example.com", "example.nl", "example.org")

# Column name for the file both importers read, and its Dutch spreadsheet twin.
COLUMNS = (
    ("email", "E-mail"),
    ("first_name", "Voornaam"),
    ("last_name", "Achternaam"),
    ("phone", "Mobiel"),
    ("city", "Plaats"),
    ("zip", "Postcode"),
    ("country_code", "Landcode"),
    ("Tags", "Labels"),
    ("Accepts Email Marketing", "Nieuwsbrief"),
    ("Geboortedatum", "Geboortedatum"),
)


def generate_rows(count: int, seed: int = 7) -> tuple[list[list[str]], int]:
    """Return ``count`` contact rows and how many of them are bad (about 1 in 200)."""
    rng = random.Random(seed)
    rows: list[list[str]] = []
    bad = 0
    for index in range(count):
        first = rng.choice(FIRST_NAMES)
        prefix = rng.choice(PREFIXES)
        last = " ".join(part for part in (prefix, rng.choice(LAST_NAMES)) if part)
        local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
        email = f"{local}{index}@{rng.choice(DOMAINS)}"
        phone = f"06 {10000000 + index:08d}" if rng.random() < 0.7 else ""
        city, zip_start = rng.choice(CITIES)
        zip_code = f"{zip_start}{rng.randint(10, 99)} {rng.choice('ABCDEGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEHJKLMNPRSTVXZ')}"
        tags = ", ".join(rng.sample(TAGS, rng.randint(0, 2)))
        consent = rng.choice(("ja", "nee", ""))
        birthday = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"

        kind = index % 200
        if index >= 200 and kind == 17:
            email = f"{local}{index}@"
            bad += 1
        elif index >= 200 and kind == 71:
            phone = f"06-{index % 100}"
            bad += 1
        elif index >= 200 and kind == 113:
            email, phone = "", ""
            bad += 1
        elif index >= 200 and kind == 157:
            email = rows[index - 150][0].upper()
            bad += 1
        rows.append([email, first, last, phone, city, zip_code, "NL", tags, consent, birthday])
    return rows, bad


def write_csv(path: Path, rows: list[list[str]], *, dutch: bool) -> None:
    headers = [dutch_name if dutch else name for name, dutch_name in COLUMNS]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";" if dutch else ",", lineterminator="\r\n" if dutch else "\n")
    writer.writerow(headers)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("cp1252" if dutch else "utf-8"))


def run_import(kind: str, csv_path: Path, limit: int | None) -> dict:
    """Import one file into a fresh SQLite database in this process and return the measurements."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "mktauto.settings"
    os.environ.setdefault("MKTAUTO_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from import_export import resources
    from import_export.formats import base_formats

    from contacts.importing import SpreadsheetCSV
    from contacts.models import Contact
    from contacts.resources import ContactResource

    data = csv_path.read_bytes()
    if limit is not None:
        lines = data.split(b"\n")
        data = b"\n".join(lines[: limit + 1]) + b"\n"

    started = time.perf_counter()
    cpu_started = time.process_time()
    if kind == "reference":

        class PlainContactResource(resources.ModelResource):
            class Meta:
                model = Contact

        dataset = base_formats.CSV(encoding="utf-8-sig").create_dataset(data)
        result = PlainContactResource().import_data(dataset, dry_run=False)
        outcome = {
            "new": result.totals["new"],
            "errors": len(result.row_errors()),
            "invalid": len(result.invalid_rows),
            "rolled_back": result.has_errors(),
        }
    else:
        dataset = SpreadsheetCSV().create_dataset(data)
        result = ContactResource().import_data(dataset, dry_run=False, file_name=csv_path.name)
        report = result.report
        outcome = {"created": report.created, "updated": report.updated, "skipped": report.skipped}
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started

    return {
        "kind": kind,
        "rows": len(dataset),
        "seconds": seconds,
        "rows_per_second": len(dataset) / seconds,
        "cpu_seconds": cpu_seconds,
        "rows_per_cpu_second": len(dataset) / cpu_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "contacts_in_database": Contact.objects.count(),
        **outcome,
    }


def run_in_fresh_process(kind: str, csv_path: Path, limit: int | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as var_dir:
        env = {**os.environ, "MKTAUTO_VAR_DIR": var_dir, "MKTAUTO_LOG_LEVEL": "WARNING", "MKTAUTO_DEBUG": "0"}
        env.pop("DATABASE_URL", None)
        command = [sys.executable, __file__, "--child", kind, "--csv", str(csv_path)]
        if limit is not None:
            command += ["--limit", str(limit)]
        completed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        return json.loads(completed.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """Return the run with the median wall time, with every run's wall and CPU seconds added."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    median = dict(ordered[len(ordered) // 2])
    median["all_seconds"] = [round(run["seconds"], 1) for run in runs]
    median["all_cpu_seconds"] = [round(run["cpu_seconds"], 1) for run in runs]
    return median


def describe_machine() -> str:
    memory = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    return (
        f"{os.cpu_count()} CPUs (nproc), {memory} RAM (free -h), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.platform()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="Rows in the generated file (default 100000).")
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=None,
        help="Import only the first N rows with the reference resource (default: the whole file).",
    )
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each project import; the median is reported (default 3).")
    parser.add_argument("--child", choices=("project", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child:
        print(json.dumps(run_import(options.child, options.csv, options.limit)))
        return

    rows, bad = generate_rows(options.rows)
    with tempfile.TemporaryDirectory(prefix="bench-import-csv-") as folder:
        plain = Path(folder) / "contacts.csv"
        dutch = Path(folder) / "contacten_excel.csv"
        write_csv(plain, rows, dutch=False)
        write_csv(dutch, rows, dutch=True)
        print(f"Machine: {describe_machine()}")
        print(f"Load average at the start (1, 5, 15 min): {', '.join(f'{load:.2f}' for load in os.getloadavg())}")
        print(f"File: {options.rows} rows, {bad} of them bad, {plain.stat().st_size / 1e6:.1f} MB")

        project = median_run([run_in_fresh_process("project", plain, None) for _ in range(options.repeat)])
        dutch_run = median_run([run_in_fresh_process("project", dutch, None) for _ in range(options.repeat)])
        reference = run_in_fresh_process("reference", plain, options.reference_rows)

    for label, run in (
        ("project (SpreadsheetCSV + ContactResource)", project),
        ("project, Dutch Excel copy (Windows-1252, ';')", dutch_run),
        ("reference (CSV + default ModelResource)", reference),
    ):
        print(
            f"{label}: {run['rows']} rows in {run['seconds']:.1f} s = {run['rows_per_second']:,.0f} rows/s "
            f"({run['cpu_seconds']:.1f} s CPU = {run['rows_per_cpu_second']:,.0f} rows per CPU second), "
            f"peak RSS {run['peak_rss_mib']:.0f} MiB, {run['contacts_in_database']} contacts in the database"
        )
    print(f"  project: {project['created']} created, {project['skipped']} skipped")
    print(f"  project runs, wall s: {project['all_seconds']}, CPU s: {project['all_cpu_seconds']} (median reported)")
    print(f"  Dutch copy runs, wall s: {dutch_run['all_seconds']}, CPU s: {dutch_run['all_cpu_seconds']}")
    print(
        f"  reference: {reference['new']} new, {reference['errors']} rows with errors, "
        f"rolled back: {reference['rolled_back']} (django-import-export rolls the import back when a row fails)"
    )
    if options.reference_rows is not None:
        print(f"  the reference imported only the first {options.reference_rows} rows of the file")
    print(f"Ratio, project / reference rows/s: {project['rows_per_second'] / reference['rows_per_second']:.1f}")
    print(
        f"Ratio, project / reference rows per CPU second: {project['rows_per_cpu_second'] / reference['rows_per_cpu_second']:.1f}"
    )
    print(f"Load average at the end (1, 5, 15 min): {', '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
