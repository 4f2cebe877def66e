"""The ``anbar`` command line."""

from __future__ import annotations

import argparse
import sys


def _demo(args) -> int:
    from anbar.devenv import demo

    if args.action == "up":
        demo.up(n_periods=args.periods)
    else:
        demo.down()
    return 0


def _bootstrap_warehouse(registry) -> None:
    """Create or bring up to date the warehouse's schemas and tables (idempotent: ``anbar.ddl``)."""
    from anbar import ddl, warehouse

    conn = warehouse.connect()
    try:
        ddl.bootstrap(conn, registry)
    finally:
        conn.close()


def _bootstrap(args) -> int:
    from anbar.registry import load_registry

    _bootstrap_warehouse(load_registry(args.registry))
    print("warehouse schemas and tables are up to date")
    return 0


def _registry_check(args) -> int:
    from anbar.registry import RegistryError, load_registry

    try:
        reg = load_registry(args.registry)
    except RegistryError as exc:
        print(exc, file=sys.stderr)
        return 1
    for org in reg.organisations.values():
        print(f"{org.code}: {len(org.datasets)} dataset(s) over {org.transport.kind}, {org.calendar.value} calendar")
    return 0


def _dbt_sources(args) -> int:
    from pathlib import Path

    from anbar.dbt.sources import render_sources
    from anbar.registry import load_registry
    from anbar.settings import REPO_ROOT

    path = Path(REPO_ROOT / "dbt_project" / "models" / "staging" / "_sources.yml")
    text = render_sources(load_registry(args.registry))
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            print(f"{path} is out of date with the registry; run: anbar dbt-sources", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def _suites(args) -> int:
    from anbar import settings
    from anbar.registry import load_registry
    from anbar.suites import check_all, write_suite

    registry = load_registry(args.registry)
    if args.action == "try":
        return _suites_try(args, registry)
    if args.action == "draft":
        if not (args.org and args.dataset):
            print("usage: anbar suites draft ORG DATASET", file=sys.stderr)
            return 2
        path = write_suite(settings.expectations_dir(), registry.dataset(args.org, args.dataset), registry)
        print(f"wrote {path}: the draft the registry implies; review it with the statisticians, then commit it")
        return 0
    problems = check_all(settings.expectations_dir(), registry)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"every suite in {settings.expectations_dir()} loads and covers the registry")
    return 1 if problems else 0


def _suites_try(args, registry) -> int:
    import json
    from pathlib import Path

    from anbar.suite_trial import TrialError, format_trial, try_suite

    names = [n for n in (args.org, args.dataset) if n]
    key = "__".join(names) if len(names) == 2 else (names[0].replace("/", "__") if names else "")
    if "__" not in key or not args.period:
        print(
            "usage: anbar suites try ORG__DATASET --period PERIOD [--version N] [--suite FILE] [--json]",
            file=sys.stderr,
        )
        return 2
    org, dataset = key.split("__", 1)
    try:
        ds = registry.dataset(org, dataset)
        trial = try_suite(
            registry, ds, args.period, suite=Path(args.suite) if args.suite else None, version=args.version
        )
    except (KeyError, TrialError) as exc:
        print(str(exc).strip("'\""), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(trial.__dict__, ensure_ascii=False, indent=2, default=str))
    else:
        print(format_trial(trial))
    return 0


def _pseudonym(args) -> int:
    from anbar import pseudonym, warehouse

    conn = warehouse.connect()
    try:
        if args.action == "status":
            found = pseudonym.installed_fingerprint(conn)
            print(f"pseudonym key installed: fingerprint {found}" if found else "no pseudonym key installed")
            return 0 if found else 1
        try:
            fingerprint = pseudonym.install_key(conn, rotate=args.rotate)
        except pseudonym.PseudonymKeyError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"pseudonym key installed: fingerprint {fingerprint}")
        return 0
    finally:
        conn.close()


def _ingest(args) -> int:
    from anbar import ingest
    from anbar.registry import load_registry

    registry = load_registry(args.registry)
    # The ledger first: waiting for a delivery writes the period on the calendar (anbar.expected_submissions),
    # which a warehouse never bootstrapped does not have. Bootstrapping is idempotent, as at every load.
    _bootstrap_warehouse(registry)
    step = ingest.run_steps(args.org, args.dataset, args.period, registry=registry)
    print(
        f"{step.org}/{step.dataset}/{step.period}: {step.state}"
        + (f" ({step.reason}: {step.message})" if step.reason else "")
    )
    return 0 if step.state in ("accepted", "noop", "waiting") else 1


def _sdmx_export(args) -> int:
    from pathlib import Path

    from anbar import warehouse
    from anbar.sdmx_export import SdmxExportError, export_marts

    conn = warehouse.connect()
    try:
        paths = export_marts(conn, Path(args.out))
    except SdmxExportError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        conn.close()
    for path in paths:
        print(f"wrote {path}")
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _calendar(args) -> int:
    import datetime as dt

    from anbar import expected
    from anbar.registry import load_registry

    registry = load_registry(args.registry)
    today = dt.date.today()
    try:
        start = expected.parse_day(args.start) if args.start else today - dt.timedelta(days=92)
        end = expected.parse_day(args.end) if args.end else today + dt.timedelta(days=31)
        if args.org:
            registry.org(args.org)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    subs = [s for s in expected.expected_submissions(registry, start, end) if args.org in (None, s.org)]
    rows = [
        [
            s.org,
            s.dataset,
            s.period.label,
            f"{s.period.start} .. {s.period.end - dt.timedelta(days=1)}",
            f"{expected.jalali(s.due_date)}  {s.due_date}",
            f"{expected.jalali(s.grace_until)}  {s.grace_until}",
            s.extension.decision if s.extension else "",
        ]
        for s in subs
    ]
    headers = [
        "org",
        "dataset",
        "period",
        "period (Gregorian)",
        "due (Jalali  Gregorian)",
        "missing after",
        "extension",
    ]
    print(f"periods ending {start} .. {end - dt.timedelta(days=1)}, by due date")
    print(_table(headers, rows))
    if args.sync:
        from anbar import warehouse

        conn = warehouse.connect()
        try:
            changed = expected.sync(conn, registry, start, end, org=args.org)
        finally:
            conn.close()
        print(f"anbar.expected_submissions: {changed} row(s) added or changed")
    return 0


def _status(args) -> int:
    from anbar import expected, warehouse

    conn = warehouse.connect()
    try:
        found = expected.read_status(conn, org=args.org, period=args.period)
    finally:
        conn.close()
    if not found:
        print("no expected submissions match (anbar calendar --sync puts periods on the calendar)", file=sys.stderr)
        return 1
    columns = ["org", "dataset", "period", "due_date", "status", "first_received_at", "accepted_at", "on_time"]
    columns += ["days_late", "versions", "accepted_first_time", "latest_submission_id"]
    headers = [c.replace("_", " ").replace("latest submission id", "submission") for c in columns]
    print(_table(headers, [[expected.shown(row[c]) for c in columns] for row in found]))
    print(f"times in {expected.SHOWN_TIMEZONE}")
    return 0


def _audit(args) -> int:
    import datetime as dt
    from pathlib import Path

    from anbar import access, audit

    if args.action == "setup-sql":
        print(audit.superuser_sql(args.role, args.database))
        return 0
    conn = access.connect_admin()  # the audit trail is the administrator's (docs/audit.md)
    try:
        if args.action == "ingest":
            source = audit.DirectorySource(Path(args.log_dir)) if args.log_dir else None
            result = audit.ingest(conn, source)
            for warning in result.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(result.summary())
            return 0
        try:
            since = dt.date.fromisoformat(args.since) if args.since else None
        except ValueError:
            print(f"--since: not a date (YYYY-MM-DD): {args.since}", file=sys.stderr)
            return 2
        with conn.cursor() as cur:
            cur.execute("select to_regclass('audit.statement_log') is not null")
            if not cur.fetchone()[0]:
                print("no audit schema yet: run anbar audit ingest first", file=sys.stderr)
                return 1
        print(audit.format_report(audit.report_rows(conn, since=since, user=args.user), args.format), end="")
        return 0
    finally:
        conn.close()


def _docs(args) -> int:
    from anbar import data_docs, settings
    from anbar.registry import load_registry

    registry = load_registry(args.registry)
    pending = data_docs.pending_sites(settings.data_docs_dir())
    failed = 0
    for site in pending:
        index = data_docs.build_pending(site, registry)
        failed += index is None
        print(f"{'built' if index else 'NOT BUILT'}: {site}")
    print(f"{len(pending) - failed} of {len(pending)} pending Data Docs site(s) built")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="anbar", description="anbar: the ministry's microdata warehouse")
    parser.add_argument("--registry", default=None, help="registry directory (default: registry/ of the repo)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the local demo stack")
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--periods", type=int, default=3, help="how many recent periods to ingest")
    p.set_defaults(func=_demo)

    p = sub.add_parser("bootstrap", help="create or update the warehouse tables from the registry")
    p.set_defaults(func=_bootstrap)

    p = sub.add_parser("registry-check", help="validate the registry files")
    p.set_defaults(func=_registry_check)

    p = sub.add_parser("dbt-sources", help="write dbt sources generated from the registry")
    p.add_argument("--check", action="store_true", help="fail if the committed file is out of date")
    p.set_defaults(func=_dbt_sources)

    p = sub.add_parser("suites", help="expectation suites")
    p.add_argument(
        "action",
        choices=["check", "draft", "try"],
        help="check: lint every suite against the registry; draft: write a new dataset's first suite; "
        "try: run the suite on disk against a landed period, writing nothing",
    )
    p.add_argument("org", nargs="?", help="organisation code, or ORG__DATASET")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--period", help="try: the period to run on (YYYY-MM in the organisation's calendar)")
    p.add_argument("--version", type=int, help="try: a version of the period (default: the latest with rows)")
    p.add_argument("--suite", help="try: a suite file to use instead of expectations/<org>__<dataset>.json")
    p.add_argument("--json", action="store_true", help="try: print the result as JSON")
    p.set_defaults(func=_suites)

    p = sub.add_parser("pseudonym", help="the warehouse's pseudonym key (HMAC of person IDs)")
    p.add_argument(
        "action",
        choices=["status", "install"],
        help="status: the installed key's fingerprint; install: from ANBAR_PSEUDONYM_KEY or the Airflow connection "
        "anbar_pseudonym",
    )
    p.add_argument("--rotate", action="store_true", help="install: replace a different key (every person_key changes)")
    p.set_defaults(func=_pseudonym)

    p = sub.add_parser(
        "ingest",
        help="ingest one dataset and period now, outside Airflow (operators' fallback); bootstraps the warehouse first",
    )
    p.add_argument("org")
    p.add_argument("dataset")
    p.add_argument("period", help="YYYY-MM in the organisation's calendar")
    p.set_defaults(func=_ingest)

    p = sub.add_parser("sdmx-export", help="write the analyst marts as SDMX-CSV, with their SDMX-ML structures")
    p.add_argument("--out", required=True, help="directory to write structure.xml and one DF_<MART>.csv per mart into")
    p.set_defaults(func=_sdmx_export)

    from anbar import ddi_export

    ddi_export.register(sub)

    p = sub.add_parser("calendar", help="the expected submissions and their due dates (Jalali and Gregorian)")
    p.add_argument("--org", help="one organisation")
    p.add_argument(
        "--from",
        dest="start",
        help="periods ending on or after this day (YYYY-MM-DD, or Jalali YYYY/MM/DD; default: 92 days ago)",
    )
    p.add_argument("--to", dest="end", help="periods ending before this day (default: in 31 days)")
    p.add_argument("--sync", action="store_true", help="also write them into the ledger (anbar.expected_submissions)")
    p.set_defaults(func=_calendar)

    p = sub.add_parser("status", help="the status of every expected submission (anbar.submission_status)")
    p.add_argument("--org", help="one organisation")
    p.add_argument("--period", help="one period label (YYYY-MM in the organisation's calendar)")
    p.set_defaults(func=_status)

    from anbar import access_cli

    access_cli.register(sub)

    from anbar import backup

    backup.register(sub)

    p = sub.add_parser("audit", help="the audit trail: who read which microdata, grants, loads (docs/audit.md)")
    p.add_argument(
        "action",
        choices=["ingest", "report", "setup-sql"],
        help="ingest: read the server's new jsonlog lines into the audit schema; report: who read what and when, "
        "grants and revocations, loads; setup-sql: print what a superuser runs once (docs/audit.md)",
    )
    p.add_argument("--since", help="report: from this day on (YYYY-MM-DD, UTC)")
    p.add_argument("--user", help="report: one database user")
    p.add_argument("--format", choices=["text", "csv"], default="text", help="report: text (default) or csv")
    p.add_argument("--log-dir", help="ingest: the server's log directory (default: ANBAR_PG_LOG_DIR, else the server)")
    p.add_argument("--role", default="anbar", help="setup-sql: the role that runs the ingest (default: anbar)")
    p.add_argument("--database", default="warehouse", help="setup-sql: the warehouse database (default: warehouse)")
    p.set_defaults(func=_audit)

    p = sub.add_parser(
        "docs", help="build the GX Data Docs of every decided delivery not built yet (what anbar_data_docs does)"
    )
    p.add_argument("action", choices=["build"])
    p.set_defaults(func=_docs)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
