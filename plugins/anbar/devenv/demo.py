"""``make demo``: bring the stack up and push the last three periods of every organisation through it."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2

from anbar import access, alerts, audit, ddl, expected
from anbar.devenv.postgres import bin_path
from anbar.devenv.progress import Stages
from anbar.devenv.stack import WAREHOUSE_DB, Stack, demo_periods, say
from anbar.periods import Period
from anbar.timetables import data_interval_for

# Defective deliveries the demo always shows (more come from the simulators' defect share).
DEMO_DEFECTS = {
    ("sso", "insured_persons", 1): "invalid_national_ids",  # quality: too many bad rows, rejected
    ("sso", "insured_persons", 2): "pensioners_hired",  # consistency across suppliers: a warning, flagged
    ("tvto", "trainees", 2): "duplicate_keys",  # quality: rejected
    ("cspf", "pensioners", 2): "count_drop",  # consistency across periods: rejected
}
WAREHOUSE_DAG = "anbar_warehouse"
DATA_DOCS_DAG = "anbar_data_docs"  # builds the Data Docs the ingest recorded, beside the warehouse build
# The late supplier: its newest period past its grace is never delivered. The real run records it missing;
# then its reminder, late notice and escalation are replayed on a simulated clock (anbar.devenv.alerts_replay).
LATE_SUPPLIER = "swo"
REPORT_DAG = "anbar_monthly_report"
AUDIT_DAG = "anbar_audit"
BACKUP_DAG = "anbar_backup"
# The access tiers shown on the demo warehouse (docs/access.md): one analyst, one researcher with a decision.
DEMO_USERS = {"analyst_demo": "analyst", "researcher_demo": "researcher"}
DEMO_MART = "mart_insured_employment"
DEMO_DECISION_MODEL = "fct_insured_employment"
DEMO_DECISION = {
    "researcher": "researcher_demo",
    "purpose": "demo: employment spells of the insured, pseudonymised",
    "decision_ref": "DEMO-COMMITTEE-1",
    "tier": "licensed",
}
PSQL = bin_path("psql")


READ_ATTEMPTS = 3
RETRY_SECONDS = 2.0


class AirflowApi:
    def __init__(self, base_url: str, user: str, password: str):
        self.base = base_url.rstrip("/")
        self.user, self.password = user, password
        self._token: str | None = None

    def _request(self, method: str, path: str, body: dict | None = None, auth: bool = True):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        if auth:
            req.add_header("Authorization", f"Bearer {self.token()}")
        # A read is safe to repeat: an api-server busy for a moment (its database slow under load) answers 5xx
        # to one poll of a run's state, and the demo (or a test) should not end on it.
        attempts = READ_ATTEMPTS if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    raw = r.read()
                break
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == attempts:
                    raise
                time.sleep(RETRY_SECONDS * attempt)
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            out = self._request("POST", "/auth/token", {"username": self.user, "password": self.password}, auth=False)
            self._token = out["access_token"]
        return self._token

    def dag_ids(self) -> list[str]:
        return [d["dag_id"] for d in self._request("GET", "/api/v2/dags?limit=100")["dags"]]

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def runs(self, dag_id: str) -> list[dict]:
        return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]

    def trigger(self, dag_id: str, run_id: str, conf: dict, interval=None) -> None:
        body: dict = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        if interval is not None:
            # The run of that data interval, as the scheduler would make it: the scheduler then makes
            # no run of its own for it, and queued runs start in order of run_after.
            body |= {
                "logical_date": interval.start.isoformat(),
                "data_interval_start": interval.start.isoformat(),
                "data_interval_end": interval.end.isoformat(),
                "run_after": interval.end.isoformat(),
            }
        try:
            self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: this run exists already (demo run twice)
                raise


# TVTO trainees are followed up in SSO six months after their course: the demo's TVTO months end
# six months before its SSO months, so the follow-up question of docs/analysts.md has an answer.
FOLLOW_UP_MONTHS = {"tvto": 6}

# Enough civil servants retiring (about 25 a month) for the monthly new-pensioner mart to
# publish national totals above the disclosure threshold; 4000 persons alone give one or two.
DEMO_CIVIL_SERVANTS = 2500


def _with_follow_up(periods: dict[str, list[str]]) -> dict[str, list[str]]:
    shifted = dict(periods)
    for code, months in FOLLOW_UP_MONTHS.items():
        if code in periods:
            labels = []
            for label in periods[code]:
                year, month = map(int, label.split("-"))
                index = year * 12 + month - 1 - months
                labels.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
            shifted[code] = labels
    return shifted


def _demo_overrides(periods: dict[str, list[str]]) -> list[str]:
    return [f"{org}/{ds}/{periods[org][i]}={defect}" for (org, ds, i), defect in DEMO_DEFECTS.items() if org in periods]


def up(today: dt.date | None = None, n_periods: int = 3, timeout: float = 1800) -> None:
    stages = Stages.from_environment(say)
    stack = Stack()
    today = today or dt.date.today()
    periods = _with_follow_up(demo_periods(stack.registry, today, n_periods))
    late = _late_period(stack.registry, periods, today)
    served = {org: [p for p in labels if (org, p) != late] for org, labels in periods.items()}
    env = prepare(stack, served, stages, overrides=_demo_overrides(periods), civil_servants=DEMO_CIVIL_SERVANTS)
    env_file = stack.write_env_file(env)
    with stages.stage("Airflow up"):
        stack.start_airflow(env)
    api = AirflowApi(stack.airflow_url(), "admin", stack.admin_password)
    ingest_dags = [f"anbar_ingest__{code}" for code in stack.registry.organisations]
    wanted = [*ingest_dags, WAREHOUSE_DAG, DATA_DOCS_DAG, REPORT_DAG]
    with stages.stage("DAGs parsed"):
        say("waiting for the DAG processor to parse the DAGs ...")
        deadline = time.monotonic() + 180
        while not set(wanted) <= set(api.dag_ids()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"DAGs not parsed: {set(wanted) - set(api.dag_ids())}; see {stack.airflow.log_file}")
            time.sleep(3)
    with stages.stage(f"ingest ({sum(len(v) for v in periods.values())} runs)"):
        # Every period is triggered before the DAGs are unpaused: an unpaused DAG at once gets a
        # scheduled run for its latest period, which would then be decided before the earlier ones.
        for code, labels in periods.items():
            for label in labels:
                trigger_period(api, stack.registry, code, label)
                say(f"triggered anbar_ingest__{code} for period {label}")
        for dag_id in (*ingest_dags, WAREHOUSE_DAG, DATA_DOCS_DAG):
            api.unpause(dag_id)
        _wait_for_runs(api, ingest_dags, sum(len(v) for v in periods.values()), timeout)
    with stages.stage("warehouse build"):
        _wait_for_warehouse(api, timeout)
    if late:
        with stages.stage("late-supplier alerts replay"):
            _replay_alerts(stack, env, *late)
    with stages.stage("monthly report"):
        _run_monthly_report(api, stack, today, timeout)
    with stages.stage("access tiers"):
        reads = _show_access(stack)
    for dag_id in (AUDIT_DAG, BACKUP_DAG):
        with stages.stage(dag_id):
            _run_governance_dag(api, dag_id, timeout)
    _print_summary(stack, env_file, reads, stages)


def prepare(
    stack: Stack,
    served: dict[str, list[str]],
    stages: Stages,
    *,
    overrides: list[str] | None = None,
    civil_servants: int = 0,
) -> dict[str, str]:
    """Everything before Airflow starts: PostgreSQL with the warehouse bootstrapped and audited, the simulated
    suppliers serving ``served`` ({org: [period, ...]}), the dbt manifest and the access plan (the loader, the
    transformer and the demo users, with their passwords); the environment of Airflow's components."""
    with stages.stage("PostgreSQL"):
        stack.start_postgres()
    with stages.stage("warehouse bootstrap"):
        conn = psycopg2.connect(stack.pg.dsn(WAREHOUSE_DB))
        try:
            ddl.bootstrap(conn, stack.registry)
            audit.install(conn)  # every statement of the warehouse database logged from now on (docs/audit.md)
        finally:
            conn.close()
    with stages.stage("simulated suppliers"):
        connections = stack.start_simulators(served, overrides=overrides, civil_servants=civil_servants)
    env = stack.airflow_env(connections)
    env["ANBAR_REPORTS_DIR"] = str(_reports_dir(stack))
    with stages.stage("dbt parse"):
        _dbt_parse(env)
    with stages.stage("access plan"):
        _apply_access_plan(stack)
    return env


def trigger_period(api: AirflowApi, registry, org: str, label: str) -> str:
    """Trigger ``anbar_ingest__<org>`` for one period as its scheduled run would be (same data interval); the run id."""
    run_id = f"demo__{label}"
    interval = data_interval_for(Period.parse(label, registry.org(org).calendar))
    api.trigger(f"anbar_ingest__{org}", run_id, {"period": label}, interval)
    return run_id


def _wait_for_runs(api: AirflowApi, dag_ids: list[str], expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        runs = [r for d in dag_ids for r in api.runs(d) if r["dag_run_id"].startswith("demo__")]
        states: dict[str, int] = {}
        for r in runs:
            states[r["state"]] = states.get(r["state"], 0) + 1
        line = ", ".join(f"{k}: {v}" for k, v in sorted(states.items()))
        if line != last:
            say(f"ingest runs — {line}")
            last = line
        if len(runs) >= expected and all(r["state"] in ("success", "failed") for r in runs):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the demo runs did not finish in time; look at the Airflow UI")
        time.sleep(5)


def _wait_for_warehouse(api: AirflowApi, timeout: float) -> None:
    say("waiting for the warehouse build (dbt via Cosmos, triggered by the accepted datasets' Assets) ...")
    deadline = time.monotonic() + timeout
    while True:
        runs = api.runs(WAREHOUSE_DAG)
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            # Asset events arriving during a build queue one more run; wait until none is pending.
            time.sleep(10)
            runs = api.runs(WAREHOUSE_DAG)
            if all(r["state"] in ("success", "failed") for r in runs):
                say(f"warehouse build runs: {', '.join(_run_outcome(r) for r in runs)}")
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the warehouse build did not finish in time; look at the Airflow UI")
        time.sleep(5)


def _run_outcome(run: dict) -> str:
    """``success in 41 s`` — a DAG run's state and how long it ran (from the REST API's start and end dates)."""
    try:
        start, end = (dt.datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return run["state"]
    return f"{run['state']} in {(end - start).total_seconds():.0f} s"


def _reports_dir(stack: Stack):
    return stack.state_dir / "reports"


def _run_monthly_report(api: AirflowApi, stack: Stack, today: dt.date, timeout: float) -> None:
    """The monthly report on the last Jalali month complete today, as its scheduled run (same data interval),
    so the scheduler makes no second run of it once the DAG is unpaused."""
    month = Period.containing(today, "jalali").previous()
    say(f"triggered {REPORT_DAG} for {month.label} ...")
    conf = {"report_month": month.label}
    state = run_dag(api, REPORT_DAG, f"demo__report__{month.label}", timeout, conf, data_interval_for(month))
    say(f"monthly report {month.label}: {state}; PDFs in {_reports_dir(stack) / month.label}")


def run_dag(api: AirflowApi, dag_id: str, run_id: str, timeout: float, conf: dict | None = None, interval=None) -> str:
    """Trigger one run of a DAG, unpause the DAG, wait for the run to end; its final state."""
    api.trigger(dag_id, run_id, conf or {}, interval)
    api.unpause(dag_id)
    deadline = time.monotonic() + timeout
    while True:
        states = [r["state"] for r in api.runs(dag_id) if r["dag_run_id"] == run_id]
        if states and states[0] in ("success", "failed"):
            return states[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dag_id} did not finish in time; look at the Airflow UI")
        time.sleep(5)


def _late_period(registry, periods: dict[str, list[str]], today: dt.date) -> tuple[str, str] | None:
    """(LATE_SUPPLIER, its newest demo period whose grace is over today): the real run records it missing."""
    if LATE_SUPPLIER not in periods:
        return None
    org = registry.org(LATE_SUPPLIER)
    for label in reversed(periods[LATE_SUPPLIER]):
        grace = max(
            alerts.alert_times(registry, org.code, d.name, p.label).expected.grace_until
            for d, p in expected.due_in_run(org, label)
        )
        if grace < today:
            return LATE_SUPPLIER, label
    return None


def _replay_alerts(stack: Stack, env: dict[str, str], org: str, period: str) -> None:
    """The late supplier's month of alerts on a simulated clock: the real ingest DAG, scheduler loop and
    callback trigger, against an Airflow metadata database of its own (the demo's scheduler would fire
    deadlines in the past at once), the demo's warehouse ledger and its SMTP sink."""
    import shutil
    import subprocess
    import sys

    home = stack.state_dir / "alerts-replay"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    replay_env = {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
        "ANBAR_WAREHOUSE_URL": stack.pg.url(
            WAREHOUSE_DB, user=access.LOADER, password=stack.service_passwords()[access.PASSWORD_ENV[access.LOADER]]
        ),
    }
    say(f"{org} never delivered {period}; replaying its reminder, late notice and escalation on a simulated clock:")
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=replay_env, check=True, capture_output=True)
    with open(home / "replay.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anbar.devenv.alerts_replay", org, period],
            env=replay_env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        outcomes = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            log.write(line)
            outcomes += [o for o in (": sent", ": already sent") if line.rstrip().endswith(o)]
        if proc.wait() != 0:
            raise RuntimeError(f"the alerts replay failed; see {home / 'replay.log'}")
    if not outcomes:
        say(f"nothing mailed: the ledger has a delivery of {org} {period} from an earlier demo; `make clean` first")


def _apply_access_plan(stack: Stack) -> None:
    """Roles and grants from the registry and the dbt manifest (docs/access.md), before any DAG runs: the
    ingest connects as anbar_loader (its SQL rules as anbar_validator), dbt as anbar_transformer, and nobody
    else writes raw."""
    conn = psycopg2.connect(stack.pg.dsn(WAREHOUSE_DB))
    try:
        plan = access.build_plan(conn, stack.registry, access.manifest_path())
        access.apply_plan(conn, plan)
        access.set_service_passwords(conn, stack.service_passwords())
        for name, kind in DEMO_USERS.items():
            access.add_user(conn, name, kind, stack.user_password(name))
    finally:
        conn.close()
    say(f"access plan applied: {len(plan.steps)} steps; demo users {', '.join(DEMO_USERS)}")


def _show_access(stack: Stack) -> list[str]:
    """The access tiers at work on the built warehouse, as the demo's users: the analyst reads a mart but not
    the microdata below it; the researcher, under a committee decision, reads that decision's columns only.
    Every statement is in the server's log, which the audit DAG then reads."""
    models = access.load_models(access.manifest_path())
    mart, core = models[DEMO_MART].relation, models[DEMO_DECISION_MODEL].relation
    conn = psycopg2.connect(stack.pg.dsn(WAREHOUSE_DB))
    try:
        active = [
            d for d in access.list_decisions(conn, status="approved") if d.decision_ref == DEMO_DECISION["decision_ref"]
        ]
        if not active:
            access.decide(
                conn,
                stack.registry,
                access.manifest_path(),
                models=[DEMO_DECISION_MODEL],
                expires_on=access.tehran_today() + dt.timedelta(days=90),
                **DEMO_DECISION,
            )
        cur = conn.cursor()
        cur.execute(
            "select columns from anbar.access_grants g join anbar.access_decisions d using (decision_id) "
            "where d.decision_ref = %s and d.status = 'approved' and g.schema_name || '.' || g.table_name = %s",
            (DEMO_DECISION["decision_ref"], core),
        )
        granted = cur.fetchone()[0]
    finally:
        conn.close()
    column_list = ", ".join(granted[:3])
    attempts = [
        ("analyst_demo", f"select count(*) from {mart}"),
        ("analyst_demo", f"select count(*) from {core}"),
        ("researcher_demo", f"select {column_list} from {core} limit 5"),
        ("researcher_demo", f"select * from {core} limit 5"),
        ("researcher_demo", f"select count(*) from {mart}"),
    ]
    lines = []
    for user, query in attempts:
        user_conn = psycopg2.connect(
            host="127.0.0.1",
            port=stack.pg.port,
            user=user,
            password=stack.user_password(user),
            dbname=WAREHOUSE_DB,
            application_name="anbar-demo",
        )
        try:
            with user_conn.cursor() as cur:
                cur.execute(query)
                outcome = f"{cur.rowcount} row(s)"
        except psycopg2.errors.InsufficientPrivilege as exc:
            outcome = "refused: " + str(exc).splitlines()[0]
        finally:
            user_conn.close()
        lines.append(f"  {user:16} {query[:70]:70}  {outcome}")
    return lines


def _run_governance_dag(api: AirflowApi, dag_id: str, timeout: float) -> None:
    """The audit DAG (the server log so far — loads, grants, the demo users' reads — into the audit schema),
    or the backup DAG (the warehouse and Airflow's database dumped, restored into a scratch database and
    checked table by table against the fingerprint taken with the dump)."""
    say(f"triggered {dag_id} ...")
    say(f"{dag_id}: {run_dag(api, dag_id, f'demo__{dag_id}', timeout)}")


def _dbt_parse(env: dict[str, str]) -> None:
    from anbar.dbt import dbt_parse

    say("parsing the dbt project (manifest for Cosmos) ...")
    dbt_parse(env)


def _print_summary(stack: Stack, env_file, access_lines: list[str], stages: Stages) -> None:
    conn = psycopg2.connect(stack.pg.dsn(WAREHOUSE_DB))
    with conn, conn.cursor() as cur:
        cur.execute(
            "select org, dataset, period, version, status, rows_manifest, rows_loaded, rows_rejected, "
            "coalesce(reason, '') from anbar.submissions order by org, dataset, period, version"
        )
        rows = cur.fetchall()
    conn.close()
    print("\nSubmission ledger:")
    print(
        f"  {'org':5} {'dataset':16} {'period':8} {'v':>2} {'status':9} {'manifest':>8} {'loaded':>7} "
        f"{'rejected':>8}  reason"
    )
    for r in rows:
        print(f"  {r[0]:5} {r[1]:16} {r[2]:8} {r[3]:>2} {r[4]:9} {r[5] or 0:>8} {r[6] or 0:>7} {r[7] or 0:>8}  {r[8]}")
    _print_scorecard(stack)
    print("\nAccess tiers (docs/access.md), as the demo's users:")
    print("\n".join(access_lines))
    _print_audit(stack)
    _print_backups(stack)
    mails = sorted(stack.mail_dir.glob("*.eml")) if stack.mail_dir.exists() else []
    print(f"\n{stages.summary()}")
    print(f"""
anbar demo is up.
  Airflow UI   {stack.airflow_url()}   login: admin / {stack.admin_password}
  Mails        {stack.mail_dir}  ({len(mails)} messages, .eml files)
  Landing      {stack.landing_dir}  (feedback.html, report.json, findings.csv beside each delivery)
  Late alerts  {stack.mail_dir}/*REMINDER* *LATE* *ESCALATION*  (the late supplier, {LATE_SUPPLIER}; the Date
               header is the simulated date; timeline in {stack.state_dir / "alerts-replay" / "replay.log"})
  Reports      {_reports_dir(stack)}/<month>/  (monthly report to the minister's office: PDF and HTML per organisation)
  Data Docs    {stack.airflow_url()}/anbar-docs/  (GX validation pages; Airflow login)
  Mart query   PGPASSWORD=$(cat {stack.state_dir / "user-analyst_demo.secret"}) \\
                 {PSQL} -h 127.0.0.1 -p {stack.pg.port} -U analyst_demo {WAREHOUSE_DB} \\
                 -c 'select * from marts.mart_insured_employment limit 20'
  Catalog      the same, -c 'select * from catalog.catalog_datasets'   (docs/catalog.md; DDI: anbar ddi-export)
  Audit        . {env_file} && anbar audit report --since {dt.date.today():%Y-%m-%d}   (docs/audit.md)
  Analysts     docs/analysts.md (questions the marts answer, with their queries); make docs (dbt docs)
  Stop         make stop
""")


def _print_audit(stack: Stack) -> None:
    """What the audit DAG recorded of the demo users' reads of microdata (failed attempts included)."""
    conn = psycopg2.connect(stack.pg.dsn(WAREHOUSE_DB))
    try:
        rows = [r for user in DEMO_USERS for r in audit.report_rows(conn, user=user) if r["section"] == "reads"]
    finally:
        conn.close()
    print("\nAudit trail of microdata reads by the demo's users (anbar audit report --user <name>):")
    for r in rows:
        print(f"  {r['user']:16} {r['object']:45} {r['command']:8} x{r['count']}  {r['detail']}")
    if not rows:
        print("  (none recorded: see the anbar_audit run in the Airflow UI)")


def _print_backups(stack: Stack) -> None:
    from anbar import backup

    print(f"\nBackups in {stack.backup_dir} (anbar backup list; docs/operations.md §8):")
    for b in backup.list_backups(stack.backup_dir):
        state = {True: "verified", False: "VERIFICATION FAILED", None: "not verified"}[b.verified]
        print(
            f"  {b.database:10} {b.started_at:%Y-%m-%d %H:%M} UTC  {b.size_bytes / 2**20:7.1f} MiB  "
            f"{b.tables:4} tables {b.rows:>9} rows  {state}"
        )


def _print_scorecard(stack: Stack) -> None:
    conn = psycopg2.connect(stack.pg.dsn(WAREHOUSE_DB))
    with conn, conn.cursor() as cur:
        cur.execute(
            "select org, dataset, period, version, outcome, "
            "string_agg(format('%s/%s', rules_failed, rules_evaluated) "
            "  || case when rows_failing > 0 then format(' (%s rows)', rows_failing) else '' end, ' | ' order by "
            "  array_position(array['conversion', 'system', 'consistency', 'quality'], principle)) "
            "from anbar.quality_scorecard_latest group by 1, 2, 3, 4, 5 order by 1, 2, 3"
        )
        rows = cur.fetchall()
    conn.close()
    print("\nQuality scorecard (rules failed / evaluated per principle, latest version of each period):")
    print(f"  {'org':5} {'dataset':16} {'period':8} {'v':>2} {'outcome':9} conversion | system | consistency | quality")
    for org, dataset, period, version, outcome, cells in rows:
        print(f"  {org:5} {dataset:16} {period:8} {version:>2} {outcome:9} {cells}")


def down() -> None:
    Stack().stop()
