"""Test data of the dbt warehouse tests: the clean layout in a real PostgreSQL, a ledger
with accepted, superseded, rejected and in-flight deliveries, and synthetic rows whose
expected warehouse figures are computed here in Python.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

PSEUDONYM_KEY = "test-pseudonym-key-not-for-production"

JALALI_YEARS = (1404, 1405, 1406)

MODELS = [
    "stg_sso__insured_persons",
    "stg_sso__workplaces",
    "stg_tvto__trainees",
    "stg_cspf__pensioners",
    "stg_swo__beneficiaries",
    "stg_swo__disability_assessments",
    "stg_ref__code_list_values",
    "stg_anbar__jalali_months",
    "stg_anbar__accepted_submissions",
    "fct_insured_employment_monthly",
    "int_person_records",
    "fct_insured_employment",
    "fct_pensions",
    "fct_training",
    "dim_person",
    "dim_person_history",
    "dim_workplace",
    "mart_insured_employment",
    "mart_new_pensioners",
    "mart_trainees",
    "mart_linkage_rate",
    "fct_welfare_benefits",
    "mart_welfare_beneficiaries",
    "stg_anbar__expected_submissions",
    "stg_anbar__submission_status",
    "stg_anbar__quality_scores",
    "mart_compliance",
    "mart_compliance_rates",
    "catalog_datasets",
    "catalog_variables",
    "catalog_lineage",
    "catalog_dataset_lineage",
]
# Tasks of the Cosmos DAG (watcher mode): the gate that coalesces deliveries accepted close together, the one
# `dbt build` of the whole project, and per model a `.run` and a `.test` task reading what that build did.
EXPECTED_TASKS = {"coalesce_deliveries", "dbt_producer_watcher"} | {
    f"{m}.{kind}" for m in MODELS for kind in ("run", "test")
}


def person_key(national_id: str, key: str = PSEUDONYM_KEY) -> str:
    return hmac.new(key.encode("utf-8"), national_id.encode("utf-8"), hashlib.sha256).hexdigest()


def pg_round2(value: Decimal) -> Decimal:
    """PostgreSQL's round(numeric, 2) (half away from zero; values here are positive)."""
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --------------------------------------------------------------------------------------
# the database layout
# --------------------------------------------------------------------------------------
def bootstrap_warehouse(conn, registry) -> None:
    """``anbar.ddl.bootstrap`` when ``anbar.sql_functions`` exists; otherwise its table part."""
    from anbar import ddl

    try:
        import anbar.sql_functions  # noqa: F401
    except ImportError:
        ddl._bootstrap_locked(conn, registry)
    else:
        ddl.bootstrap(conn, registry)
    ensure_jalali_calendar(conn)


def ensure_jalali_calendar(conn, years=JALALI_YEARS) -> None:
    """Create and fill ``anbar.jalali_calendar`` for ``years`` unless it already has them."""
    import jdatetime

    with conn.cursor() as cur:
        cur.execute(
            """
            create table if not exists anbar.jalali_calendar (
                jalali text primary key,
                jalali_year integer not null,
                jalali_month integer not null,
                jalali_day integer not null,
                gregorian date not null unique
            )
            """
        )
        for year in years:
            cur.execute("select count(*) from anbar.jalali_calendar where jalali_year = %s", (year,))
            if cur.fetchone()[0]:
                continue
            day = jdatetime.date(year, 1, 1)
            rows = []
            while day.year == year:
                rows.append(
                    (
                        f"{day.year:04d}/{day.month:02d}/{day.day:02d}",
                        day.year,
                        day.month,
                        day.day,
                        day.togregorian(),
                    )
                )
                day += jdatetime.timedelta(days=1)
            cur.executemany(
                "insert into anbar.jalali_calendar"
                " (jalali, jalali_year, jalali_month, jalali_day, gregorian)"
                " values (%s, %s, %s, %s, %s)",
                rows,
            )
    conn.commit()


# --------------------------------------------------------------------------------------
# synthetic deliveries
# --------------------------------------------------------------------------------------
@dataclass
class Delivery:
    org: str
    dataset: str
    period: str
    version: int
    status: str
    rows: list[dict]
    submission_id: int | None = None


@dataclass
class Synthetic:
    deliveries: list[Delivery] = field(default_factory=list)

    def used(self, org: str, dataset: str) -> list[Delivery]:
        """What the warehouse must use: the latest accepted version of each period."""
        best: dict[str, Delivery] = {}
        for d in self.deliveries:
            if (d.org, d.dataset, d.status) != (org, dataset, "accepted"):
                continue
            if d.period not in best or d.version > best[d.period].version:
                best[d.period] = d
        return [best[p] for p in sorted(best)]

    def all_national_ids(self) -> set[str]:
        return {r["national_id"] for d in self.deliveries for r in d.rows if "national_id" in r}

    def expected_mart(self) -> dict[tuple[str, str, str], dict]:
        """(period, province_code, sex) -> expected figures of fct_insured_employment_monthly."""
        province = {
            (d.period, r["workshop_code"]): r["province"] for d in self.used("sso", "workplaces") for r in d.rows
        }
        cells: dict[tuple[str, str, str], dict] = defaultdict(
            lambda: {"persons": set(), "jobs": 0, "wage": 0, "days": 0}
        )
        for d in self.used("sso", "insured_persons"):
            for r in d.rows:
                cell = cells[(d.period, province.get((d.period, r["workshop_code"]), "_U"), r["sex"])]
                cell["persons"].add(r["national_id"])
                cell["jobs"] += 1
                cell["wage"] += r["insured_wage"]
                cell["days"] += r["days_worked"]
        return {
            k: {
                "insured_persons": len(v["persons"]),
                "insured_jobs": v["jobs"],
                "total_insured_wage_rials": Decimal(v["wage"]),
                "avg_insured_wage_rials": pg_round2(Decimal(v["wage"]) / Decimal(v["jobs"])),
                "total_days_worked": v["days"],
            }
            for k, v in cells.items()
        }

    def expected_persons(self) -> dict[str, dict]:
        """person_key -> the periods each of sso and tvto names the person in (dim_person)."""
        out: dict[str, dict] = {}
        for org, dataset in (("sso", "insured_persons"), ("tvto", "trainees")):
            for d in self.used(org, dataset):
                for r in d.rows:
                    p = out.setdefault(person_key(r["national_id"]), {"sso": set(), "tvto": set()})
                    p[org].add(d.period)
        return out


def _person(i: int) -> str:
    from anbar.ids import make_person_id

    return make_person_id(310_000_000 + i * 7_919)


WORKSHOPS = {  # workshop_code -> province
    "W0001": "23",
    "W0002": "23",
    "W0003": "10",
    "W0004": "10",
    "W0005": "07",
    "W0006": "07",
}


def _insured_row(i: int, workshop: str, wage_factor: int = 1, wage_bump: int = 0) -> dict:
    return {
        "national_id": _person(i),
        "workshop_code": workshop,
        "sex": "1" if i % 3 else "2",
        "birth_date": dt.date(1975 + i % 25, 1 + i % 12, 1 + i % 28),
        "insurance_type": "1" if i % 5 else "2",
        "days_worked": 20 + i % 12,
        "insured_wage": (120_000_000 + i * 1_234_567 + wage_bump) * wage_factor,
        "employment_start": dt.date(2015 + i % 10, 1 + i % 12, 1 + i % 28),
    }


def _insured_rows(persons: range | list[int], wage_factor: int = 1, wage_bump: int = 0) -> list[dict]:
    codes = sorted(WORKSHOPS)
    rows = []
    for i in persons:
        rows.append(_insured_row(i, codes[i % len(codes)], wage_factor, wage_bump))
        if i % 7 == 0:  # a second job, in another province
            rows.append(_insured_row(i, codes[(i + 2) % len(codes)], wage_factor, wage_bump + 55_555))
    return rows


def _workplace_rows(codes) -> list[dict]:
    from anbar.ids import make_legal_entity_id

    return [
        {
            "workshop_code": code,
            "legal_id": make_legal_entity_id(1_038_028_000 + n),
            "workshop_name": f"کارگاه {n}",
            "isic_section": "CFGHJK"[n % 6],
            "province": WORKSHOPS[code],
            "registered_on": dt.date(2010 + n, 3, 21),
        }
        for n, code in enumerate(codes)
    ]


def _trainee_rows(persons, sex_flip: set[int] = frozenset()) -> list[dict]:
    rows = []
    for i in persons:
        sex = "1" if i % 3 else "2"
        if i in sex_flip:
            sex = "2" if sex == "1" else "1"
        rows.append(
            {
                "national_id": _person(i),
                "course_code": f"C{100 + i % 4}",
                "isco_code": "7212",
                "sex": sex,
                "birth_date": dt.date(1975 + i % 25, 1 + i % 12, 1 + i % 28),
                "province": "23" if i % 2 else "10",
                "course_start": dt.date(2026, 6, 1),
                "course_end": dt.date(2026, 9, 15),
                "hours": 240,
                "result": "P" if i % 4 else "F",
            }
        )
    return rows


def make_synthetic() -> Synthetic:
    all_workshops = sorted(WORKSHOPS)
    s = Synthetic()
    add = s.deliveries.append
    # SSO 1405-06: one accepted version.
    add(Delivery("sso", "insured_persons", "1405-06", 1, "accepted", _insured_rows(range(0, 25))))
    # SSO 1405-07: v1 accepted then superseded (wages in tomans by mistake, and person 45 who
    # is nowhere else), v2 accepted (used), v3 rejected, v4 still validating.
    add(
        Delivery(
            "sso",
            "insured_persons",
            "1405-07",
            1,
            "accepted",
            _insured_rows([*range(0, 30), 45], wage_factor=10),
        )
    )
    add(Delivery("sso", "insured_persons", "1405-07", 2, "accepted", _insured_rows(range(0, 31))))
    add(
        Delivery(
            "sso",
            "insured_persons",
            "1405-07",
            3,
            "rejected",
            _insured_rows([*range(0, 30), 40, 41, 42], wage_bump=999_999),
        )
    )
    add(
        Delivery(
            "sso",
            "insured_persons",
            "1405-07",
            4,
            "validated",
            _insured_rows([*range(0, 30), 43], wage_bump=777_777),
        )
    )
    # SSO workplaces: 1405-07 lacks W0006, whose jobs fall under province '_U' (unknown).
    add(Delivery("sso", "workplaces", "1405-06", 1, "accepted", _workplace_rows(all_workshops)))
    add(Delivery("sso", "workplaces", "1405-07", 1, "accepted", _workplace_rows(all_workshops[:-1])))
    # TVTO 2026-09 accepted (persons 20..39; 20..30 are also insured; 25 disagrees on sex);
    # TVTO 2026-10 rejected (persons 46, 47 appear nowhere else).
    add(
        Delivery(
            "tvto",
            "trainees",
            "2026-09",
            1,
            "accepted",
            _trainee_rows(range(20, 40), sex_flip={25}),
        )
    )
    add(Delivery("tvto", "trainees", "2026-10", 1, "rejected", _trainee_rows([46, 47, 20])))
    return s


def load_synthetic(conn, registry, synthetic: Synthetic) -> None:
    """Ledger rows, one clean partition per delivery, and the rows."""
    from psycopg2 import sql

    with conn.cursor() as cur:
        for n, d in enumerate(synthetic.deliveries):
            cur.execute(
                """
                insert into anbar.submissions (org, dataset, period, version, transport,
                    delivery_sha256, rows_manifest, rows_loaded, rows_rejected, status, received_at)
                values (%s, %s, %s, %s, 'sftp', %s, %s, %s, 0, %s, %s)
                returning submission_id
                """,
                (
                    d.org,
                    d.dataset,
                    d.period,
                    d.version,
                    hashlib.sha256(f"{n}".encode()).hexdigest(),
                    len(d.rows),
                    len(d.rows),
                    d.status,
                    dt.datetime(2026, 10, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n),
                ),
            )
            d.submission_id = cur.fetchone()[0]
            ds = registry.dataset(d.org, d.dataset)
            part = sql.Identifier("clean", f"{ds.key}_s{d.submission_id}")
            cur.execute(
                sql.SQL("create table {} partition of {} for values in ({})").format(
                    part, sql.Identifier("clean", ds.key), sql.Literal(d.submission_id)
                )
            )
            cols = ["_submission_id", "_file", "_row_no", "_period", *ds.column_names]
            insert = sql.SQL("insert into {} ({}) values ({})").format(
                sql.Identifier("clean", ds.key),
                sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            )
            cur.executemany(
                insert,
                [
                    (
                        d.submission_id,
                        f"{d.dataset}.csv",
                        row_no,
                        d.period,
                        *(r.get(c) for c in ds.column_names),
                    )
                    for row_no, r in enumerate(d.rows, start=1)
                ],
            )
    conn.commit()


def make_warehouse(pg, registry, dbname: str):
    """Create ``dbname``, bootstrap the layout and load the synthetic deliveries into it."""
    import psycopg2

    pg.create_database(dbname)
    synthetic = make_synthetic()
    conn = psycopg2.connect(pg.dsn(dbname))
    try:
        bootstrap_warehouse(conn, registry)
        from anbar import pseudonym

        pseudonym.install_key(conn, PSEUDONYM_KEY, rotate=True)  # the tests' own key, whatever the environment
        load_synthetic(conn, registry, synthetic)
    finally:
        conn.close()
    return synthetic


def warehouse_env(pg, dbname: str) -> dict[str, str]:
    """Environment for dbt against database ``dbname`` of the test server (dev target)."""
    from anbar.dbt import dbt_env

    return dbt_env(
        host="127.0.0.1",
        port=pg.port,
        user="anbar_admin",
        password=pg.password,
        dbname=dbname,
        target="dev",
    )


def record_scorecard(cur, submission_id: int, **by_principle: tuple[int, int]) -> None:
    """Quality scorecard rows of a delivery: principle -> (rules evaluated, rules failed)."""
    cur.execute(
        "insert into anbar.quality_scorecard (submission_id, org, dataset, period, version, principle, "
        "rules_evaluated, rules_failed, blocking_failed, outcome) "
        "select submission_id, org, dataset, period, version, p.principle, p.evaluated, p.failed, 0, status "
        "from anbar.submissions, unnest(%s::text[], %s::int[], %s::int[]) as p (principle, evaluated, failed) "
        "where submission_id = %s",
        (
            list(by_principle),
            [e for e, _ in by_principle.values()],
            [f for _, f in by_principle.values()],
            submission_id,
        ),
    )


def dbt_build(pg, dbname: str, select: str, target) -> None:
    """``dbt build --select <select>`` against database ``dbname``; fails the test unless it is clean."""
    import time

    from anbar.dbt import run_dbt

    started = time.monotonic()
    proc = run_dbt(
        ["build", "--select", select, "--target-path", str(target), "--log-path", str(target)],
        env=warehouse_env(pg, dbname),
        check=False,
        capture=True,
    )
    print(f"\n[timing] dbt build --select {select} in {time.monotonic() - started:.1f}s")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-4000:]
    assert "ERROR=0" in proc.stdout and "WARN=0" in proc.stdout, proc.stdout[-3000:]


def fetch_dicts(conn, query: str) -> list[dict]:
    """The rows of ``query`` as dicts (the transaction is ended after)."""
    with conn.cursor() as cur:
        cur.execute(query)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    conn.commit()
    return rows
