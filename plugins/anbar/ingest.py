"""The ingest of one dataset for one period, step by step.

Each step is one Airflow task (see anbar.ingest_dag) and is safe to rerun: it reads
the submission's state from the ledger and does nothing that has already been done.
Steps pass a small dict (``Step``) from one to the next; a delivery that has been
decided (rejected, or a no-op re-delivery) flows through the remaining steps
untouched, so the last step always reports and notifies.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from anbar import ddl, feedback, ledger, notify, settings, verdict, warehouse
from anbar.exchange import (
    MANIFEST_NAME,
    DeliveryRejected,
    declared_rows,
    parse_api_manifest,
    parse_manifest,
    shown,
)
from anbar.expected import expected_submission, record_expected
from anbar.landing import LandedFile, LandingArchive, sha256_bytes
from anbar.periods import Period
from anbar.registry import Dataset, Organisation, Registry, load_registry

if TYPE_CHECKING:
    from anbar.hooks import SupplierApiHook, SupplierSftpHook

log = logging.getLogger(__name__)

SIZE_SLACK = 0  # a file larger than declared is rejected at once, before it fills the disk


@dataclass
class Step:
    org: str
    dataset: str
    period: str
    state: str  # waiting | missing | received | landed | loaded | accepted | rejected | noop
    submission_id: int | None = None
    version: int | None = None
    reason: str | None = None
    message: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.state in ("missing", "rejected", "noop", "accepted")

    def to_xcom(self) -> dict:
        return asdict(self)

    @classmethod
    def from_xcom(cls, data: dict) -> Step:
        return cls(**data)


def _resolve(registry: Registry, org_code: str, dataset: str, period: str) -> tuple[Organisation, Dataset, Period]:
    org = registry.org(org_code)
    ds = org.dataset(dataset)
    return org, ds, Period.parse(period, org.calendar, ds.period)


def source_for(org: Organisation) -> SupplierSftpHook | SupplierApiHook:
    # Imported here: the SFTP and HTTP providers are for the tasks that talk to suppliers, not process/conclude.
    from anbar.hooks import SupplierApiHook, SupplierSftpHook

    if org.transport.kind == "sftp":
        return SupplierSftpHook(org.transport.conn_id, org.transport.outbox)
    return SupplierApiHook(org.transport.conn_id)


def deadline(registry: Registry, org: Organisation, ds: Dataset, period: Period) -> dt.datetime:
    """End of the last day a delivery may arrive (due date + grace, an approved extension counted),
    in the organisation's time zone."""
    from zoneinfo import ZoneInfo

    last_day = expected_submission(registry, org.code, ds.name, period.label).grace_until
    return dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(org.timezone))


def _put_on_calendar(registry: Registry, org: Organisation, ds: Dataset, period: Period) -> None:
    """The period this run waits for is on the ledger's calendar (anbar.expected_submissions), so
    its status and the compliance marts count it from the first poke, delivered or not."""
    conn = warehouse.connect()
    try:
        record_expected(conn, registry, org.code, ds.name, period.label)
    finally:
        conn.close()


# -- step 1: wait for the manifest ---------------------------------------------------------------------


def probe(org_code: str, dataset: str, period: str, now: dt.datetime, registry: Registry | None = None) -> Step:
    """Is the delivery there? ``waiting`` until the deadline passes, then ``missing``."""
    registry = registry or load_registry()
    org, ds, p = _resolve(registry, org_code, dataset, period)
    _put_on_calendar(registry, org, ds, p)
    source = source_for(org)
    try:
        manifest = source.read_manifest(ds.name, p.label)
        if manifest is not None:
            return Step(org.code, ds.name, p.label, "received")
        last_moment = deadline(registry, org, ds, p)
        if now < last_moment:
            return Step(org.code, ds.name, p.label, "waiting")
        detail = f"no manifest for {org.code}/{ds.name}/{p.label} by {last_moment.isoformat()}"
        if org.transport.kind == "sftp":
            names = source.list_period(ds.name, p.label)
            if names:
                detail += (
                    f"; the period directory holds {', '.join(names[:10])} but no {MANIFEST_NAME} "
                    "(the manifest must be written last, after the data files)"
                )
        return Step(org.code, ds.name, p.label, "missing", reason="missing", message=detail)
    finally:
        source.close()


def record_missing(step: Step, registry: Registry | None = None) -> Step:
    registry = registry or load_registry()
    conn = warehouse.connect()
    try:
        ddl.bootstrap(conn, registry)
        sub = ledger.record_missing(
            conn, org=step.org, dataset=step.dataset, period=step.period, message=step.message or "no delivery"
        )
        verdict.score_rejection(conn, sub, "missing")
        step.submission_id, step.version = sub.submission_id, sub.version
        return step
    finally:
        conn.close()


# -- step 2: receive and land ---------------------------------------------------------------------------


def receive(
    step: Step, run_id: str | None = None, registry: Registry | None = None, archive: LandingArchive | None = None
) -> Step:
    """Fetch the manifest and files into the landing archive; verify bytes, hashes and names."""
    if step.decided:
        return step
    registry = registry or load_registry()
    archive = archive or LandingArchive(settings.landing_dir())
    org, ds, p = _resolve(registry, step.org, step.dataset, step.period)
    conn = warehouse.connect()
    source = source_for(org)
    try:
        ddl.bootstrap(conn, registry)
        if org.transport.kind == "sftp":
            return _receive_sftp(conn, source, archive, org, ds, p, step, run_id)
        return _receive_api(conn, source, archive, org, ds, p, step, run_id)
    except Exception as exc:
        _record_failure(step, "receive", exc)
        raise
    finally:
        source.close()
        conn.close()


def _record_failure(step: Step, stage: str, exc: BaseException) -> None:
    """A step that failed for a reason that is not the delivery's (a server, the network, the database) goes
    on the ledger's step log, so its history says why the task was retried. Best effort, on a connection of
    its own: the step's may be what failed."""
    try:
        conn = warehouse.connect()
        try:
            error = _causes(exc)[:4000]
            ledger.log_event(
                conn, step.org, step.dataset, step.period, stage, "failed", step.submission_id, error=error
            )
            conn.commit()
        finally:
            conn.close()
    except Exception:
        log.warning(
            "could not log the failed %s of %s/%s/%s", stage, step.org, step.dataset, step.period, exc_info=True
        )


def _causes(exc: BaseException) -> str:
    """The exception and what caused it, outermost first: a driver's last word ("invalid socket") is
    rarely the reason ("terminating connection due to administrator command")."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {str(current).strip()}")
        current = current.__cause__ or current.__context__
    return " <- ".join(parts)


def _reject(conn, sub: ledger.Submission, step: Step, exc: DeliveryRejected, stage: str) -> Step:
    """A delivery rejected before its values were checked. Its records were counted only if the rejection
    says so (``counted``: a row count that differs from the manifest's); otherwise the count stays unknown,
    whatever the manifest claims (exchange standard §10.1)."""
    counted = exc.detail.get("counted")
    updated = ledger.update(
        conn,
        sub,
        stage,
        "rejected",
        reason=exc.reason,
        message=exc.message,
        rows_loaded=0,
        rows_rejected=counted,
        rows_counted=counted,
    )
    verdict.score_rejection(conn, updated, exc.reason)
    log.warning("%s/%s/%s v%s rejected at %s: %s", step.org, step.dataset, step.period, updated.version, stage, exc)
    step.state, step.reason, step.message = "rejected", exc.reason, exc.message
    step.detail = {**step.detail, **exc.detail, "stage": stage}
    return step


def _lock(conn, submission_id: int) -> None:
    """Serialise work on one submission (two runs of the same period may overlap); released on close."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_lock(%s)", (submission_id,))
    conn.commit()


def _open(
    conn, step: Step, *, transport: str, delivery_sha256: str, raw_manifest: bytes, rows_of, run_id: str | None
) -> tuple[ledger.Submission, Step | None]:
    """Record the delivery (or find it again) and lock it. Returns (submission, step if nothing is left to do)."""
    manifest_json, rows_manifest = _as_recorded(raw_manifest, rows_of)
    sub, created = ledger.open_submission(
        conn,
        org=step.org,
        dataset=step.dataset,
        period=step.period,
        transport=transport,
        delivery_sha256=delivery_sha256,
        manifest=manifest_json,
        rows_manifest=rows_manifest,
        run_id=run_id,
    )
    step.submission_id, step.version = sub.submission_id, sub.version
    _lock(conn, sub.submission_id)
    sub = ledger.get(conn, sub.submission_id)
    return sub, _continue_or_noop(sub, created, step)


def _continue_or_noop(sub: ledger.Submission, created: bool, step: Step) -> Step | None:
    """A delivery seen before: a decided one is a no-op; an unfinished one resumes where it stopped."""
    if created or sub.status == "received":
        return None
    if sub.status in ("accepted", "rejected"):
        step.state = "noop"
        step.message = f"identical to version {sub.version}, already {sub.status}; nothing to do"
        return step
    step.state = sub.status  # landed / loaded / validated: later steps pick it up from the ledger
    return step


def _read_manifest(source: SupplierSftpHook | SupplierApiHook, org: Organisation, ds: Dataset, p: Period) -> bytes:
    raw = source.read_manifest(ds.name, p.label)
    if raw is None:
        raise RuntimeError(f"the manifest of {org.code}/{ds.name}/{p.label} disappeared after it was seen")
    return raw


def _as_recorded(raw_manifest: bytes, rows_of) -> tuple[dict, int | None]:
    """The manifest as the ledger records it before it is checked; an unreadable one is kept as text,
    so the delivery is on record before it is rejected. (PostgreSQL's jsonb holds neither NUL nor NaN:
    a manifest with them is kept as text too.)"""
    try:
        data = json.loads(raw_manifest.decode("utf-8-sig"))
        if "\\u0000" in json.dumps(data, allow_nan=False):
            raise ValueError("a NUL character")
        return data, rows_of(data)
    except Exception:
        return {"unparseable": shown(raw_manifest[:2000].decode("utf-8", "replace"), 2000)}, None


def _receive_sftp(
    conn,
    source: SupplierSftpHook,
    archive: LandingArchive,
    org: Organisation,
    ds: Dataset,
    p: Period,
    step: Step,
    run_id: str | None,
) -> Step:
    raw_manifest = _read_manifest(source, org, ds, p)
    delivery_sha = sha256_bytes(raw_manifest)
    sub, done = _open(
        conn,
        step,
        transport="sftp",
        delivery_sha256=delivery_sha,
        raw_manifest=raw_manifest,
        rows_of=declared_rows,
        run_id=run_id,
    )
    if done:
        return done
    delivery_dir = archive.delivery_dir(org.code, ds.name, p.label, delivery_sha)
    landed: list[LandedFile] = []
    try:
        manifest = parse_manifest(raw_manifest, org, ds, p)
        listing = set(source.list_period(ds.name, p.label) or [])
        unlisted = sorted(listing - {f.name for f in manifest.files} - {MANIFEST_NAME})
        if unlisted:
            ledger.log_event(
                conn,
                org.code,
                ds.name,
                p.label,
                "receive",
                "note",
                sub.submission_id,
                message="files not listed in the manifest were not downloaded",
                files=unlisted,
            )
            conn.commit()
        for f in manifest.files:

            def write(out, f=f):
                source.stream_file(ds.name, p.label, f.name, out, max_bytes=f.bytes + SIZE_SLACK)

            lf = archive.store_stream(f.name, write)
            landed.append(lf)
            if lf.bytes != f.bytes:
                raise DeliveryRejected(
                    "size_mismatch",
                    f"{f.name}: the manifest declares {f.bytes} bytes, "
                    f"{lf.bytes} were delivered (a truncated or still-growing file?)",
                    file=f.name,
                    declared=f.bytes,
                    found=lf.bytes,
                )
            if lf.sha256 != f.sha256:
                raise DeliveryRejected(
                    "checksum_mismatch",
                    f"{f.name}: sha256 is {lf.sha256}, the manifest declares {f.sha256}",
                    file=f.name,
                )
    except DeliveryRejected as exc:
        archive.record_delivery(org.code, ds.name, p.label, delivery_sha, raw_manifest, landed)
        ledger.update(conn, sub, "land", sub.status, landing_path=str(delivery_dir))
        return _reject(conn, sub, step, exc, "land")
    archive.record_delivery(org.code, ds.name, p.label, delivery_sha, raw_manifest, landed)
    ledger.update(conn, sub, "land", "landed", landing_path=str(delivery_dir), rows_manifest=manifest.rows)
    step.state = "landed"
    return step


def _receive_api(
    conn,
    source: SupplierApiHook,
    archive: LandingArchive,
    org: Organisation,
    ds: Dataset,
    p: Period,
    step: Step,
    run_id: str | None,
) -> Step:
    raw_manifest = _read_manifest(source, org, ds, p)
    malformed: list[DeliveryRejected] = []

    def pages():
        # A page that is not a records page rejects the delivery, with the records before it kept as evidence.
        try:
            yield from source.iter_jsonl(ds.name, p.label)
        except DeliveryRejected as exc:
            malformed.append(exc)

    records = archive.store_chunks(f"{ds.name}_{p.label}.jsonl", pages())
    delivery_sha = sha256_bytes(raw_manifest + b"\n" + records.sha256.encode())
    sub, done = _open(
        conn,
        step,
        transport="api",
        delivery_sha256=delivery_sha,
        raw_manifest=raw_manifest,
        rows_of=declared_rows,
        run_id=run_id,
    )
    if done:
        return done
    delivery_dir = archive.record_delivery(org.code, ds.name, p.label, delivery_sha, raw_manifest, [records])
    try:
        manifest = parse_api_manifest(raw_manifest, org, ds, p)
        if malformed:
            raise malformed[0]
    except DeliveryRejected as exc:
        ledger.update(conn, sub, "land", sub.status, landing_path=str(delivery_dir))
        return _reject(conn, sub, step, exc, "land")
    ledger.update(conn, sub, "land", "landed", landing_path=str(delivery_dir), rows_manifest=manifest.rows)
    step.state = "landed"
    return step


# -- step 3: the pass: read, convert, validate, load, decide -----------------------------------------------


def process(step: Step, registry: Registry | None = None, archive: LandingArchive | None = None) -> Step:
    """The landed delivery through one vectorised pass (:mod:`anbar.engine.delivery`) to its decision.

    Safe to rerun: a submission already decided is left as it is; one whose pass stopped half way is
    done again from its landed bytes (its unattached table is rebuilt; nothing of it was visible)."""
    if step.decided:
        return step
    from anbar.engine import delivery, read

    registry = registry or load_registry()
    archive = archive or LandingArchive(settings.landing_dir())
    org, ds, p = _resolve(registry, step.org, step.dataset, step.period)
    conn = warehouse.connect()
    try:
        _lock(conn, step.submission_id)
        sub = ledger.get(conn, step.submission_id)
        if sub.status in ("accepted", "rejected"):
            step.state = sub.status
            return step
        try:
            landed = read.landed_delivery(archive, org, ds, p, sub)
            outcome = delivery.process(conn, archive, registry, org, ds, sub, landed)
        except DeliveryRejected as exc:
            conn.rollback()
            return _reject(conn, ledger.get(conn, sub.submission_id), step, exc, "load")
        except Exception as exc:
            _record_failure(step, "process", exc)
            raise
        v = outcome.verdict
        # The pass's sub-steps, kept with the delivery's other steps (what a slow month spent its time on).
        ledger.log_event(conn, sub.org, sub.dataset, sub.period, "process", "timed", sub.submission_id,
                         seconds=outcome.timings.steps, peak_rss_mib=outcome.timings.peak_rss_mib)  # fmt: skip
        conn.commit()
        step.state = v.status
        if v.status == "rejected":
            step.reason, step.message = "validation", v.message
        step.detail = {
            **step.detail,
            "rows_in": outcome.read.rows_in,
            "rows_loaded": v.rows_loaded,
            "rows_rejected": v.rows_rejected,
            "warnings": outcome.read.warnings,
            "validation": {k: v.summary.get(k) for k in ("success", "by_principle", "decision")},
            "seconds": outcome.timings.steps,
            "peak_rss_mib": outcome.timings.peak_rss_mib,
        }
        return step
    finally:
        conn.close()


# -- step 5: conclude: report, notify ------------------------------------------------------------------------


def conclude(step: Step, registry: Registry | None = None, archive: LandingArchive | None = None) -> Step:
    """Write the outcome beside the landed delivery and tell people about failures (once)."""
    registry = registry or load_registry()
    archive = archive or LandingArchive(settings.landing_dir())
    org, ds, p = _resolve(registry, step.org, step.dataset, step.period)
    if step.state == "noop":
        return step
    conn = warehouse.connect()
    try:
        if step.state == "missing":
            step.detail = {
                **step.detail,
                "mail": _mail(conn, notify.missing_mail(org, ds, p.label, step.message or "")),
            }
            return step
        sub = ledger.get(conn, step.submission_id)
        with conn.cursor() as cur:
            cur.execute(
                "select validation_summary from anbar.submissions where submission_id = %s", (sub.submission_id,)
            )
            (summary,) = cur.fetchone()
            cur.execute(
                "select file, row_no, principle, rule, severity from anbar.row_findings where submission_id = %s "
                "order by file, row_no, rule",
                (sub.submission_id,),
            )
            findings = cur.fetchall()
        conn.commit()
        if summary and sub.landing_path and not summary.get("data_docs_url"):
            summary = _publish_docs(conn, ds, sub, summary)
            step.detail = {**step.detail, "data_docs": summary.get("data_docs_url")}
        report = feedback.build(org, ds, asdict(sub), summary)
        if sub.landing_path:
            delivery = Path(sub.landing_path)
            archive.write_report(delivery, {**report, "validation": summary})
            archive.write_text(delivery, "feedback.html", feedback.render_html(report))
            archive.write_text(delivery, "findings.csv", feedback.findings_csv(findings))
            if sub.status == "rejected":
                archive.quarantine(delivery, sub.org, sub.dataset, sub.period, sub.version)
        step.detail = {**step.detail, "mail": _mail(conn, notify.feedback_mail(org, ds, report))}
        step.state = sub.status
        return step
    finally:
        conn.close()


def _publish_docs(conn, ds: Dataset, sub: ledger.Submission, summary: dict) -> dict:
    """The address of a validated delivery's GX Data Docs, into the summary the feedback quotes. The site is
    built from the results the pass kept beside the delivery by ``anbar_data_docs`` (GX is imported there,
    never in an ingest task)."""
    from anbar.data_docs import schedule_from_results

    url = schedule_from_results(Path(sub.landing_path), ds, sub.org, sub.period, sub.version, sub.submission_id)
    if url:
        summary = {**summary, "data_docs_url": url}
        with conn.cursor() as cur:
            cur.execute(
                "update anbar.submissions set validation_summary = validation_summary || %s::jsonb "
                "where submission_id = %s",
                (json.dumps({"data_docs_url": url}), sub.submission_id),
            )
        conn.commit()
    return summary


def _mail(conn, mail: notify.Mail) -> str:
    """Send once; a mail server outage does not fail the ingest: the mail waits in the outbox
    (``anbar_mail_outbox`` sends it when the server is back)."""
    try:
        return "sent" if notify.send(conn, mail) else "already sent"
    except notify.MailNotSent as exc:
        log.warning("%s", exc)
        return "queued"


def land_files(
    org_code: str,
    dataset: str,
    period: str,
    paths: list[Path],
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    rows: list[int] | None = None,
    registry: Registry | None = None,
    archive: LandingArchive | None = None,
    run_id: str | None = None,
) -> Step:
    """Land CSV files at hand as one delivery of ``org_code``/``dataset``/``period``, as if its supplier had
    published them with a manifest written here (sizes, sha256; records counted by the structure check, or
    ``rows`` as declared); the step returned is ready for :func:`process`. For loading a delivery received
    outside the transports (and for tests and benchmarks)."""
    from anbar.engine import structure
    from anbar.engine.read import first_line_length

    registry = registry or load_registry()
    archive = archive or LandingArchive(settings.landing_dir())
    org, ds, p = _resolve(registry, org_code, dataset, period)
    landed, entries = [], []
    for n, path in enumerate(paths):
        with open(path, "rb") as fh:
            lf = archive.store_stream(path.name, lambda out, fh=fh: shutil.copyfileobj(fh, out, 1 << 20))
        if rows is not None:
            count = rows[n]
        else:
            with open(lf.path, "rb") as fh:
                columns = fh.readline().count(delimiter.encode()) + 1
            found = structure.scan(lf.path, first_line_length(lf.path), columns, delimiter)
            if not found.clean:
                raise ValueError(f"{path}: not well-formed CSV ({found.why}); give its rows to land it as it is")
            count = found.records
        landed.append(lf)
        entries.append({"name": path.name, "bytes": lf.bytes, "sha256": lf.sha256, "rows": count})
    manifest = {
        "org": org.code,
        "dataset": ds.name,
        "period": p.label,
        "schema_version": ds.schema_version,
        "encoding": encoding,
        "delimiter": delimiter,
        "files": entries,
    }
    raw_manifest = json.dumps(manifest, indent=2).encode()
    delivery_sha = sha256_bytes(raw_manifest)
    conn = warehouse.connect()
    try:
        ddl.bootstrap(conn, registry)
        step = Step(org.code, ds.name, p.label, "received")
        sub, done = _open(
            conn,
            step,
            transport="file",
            delivery_sha256=delivery_sha,
            raw_manifest=raw_manifest,
            rows_of=declared_rows,
            run_id=run_id,
        )
        if done:
            return done
        delivery_dir = archive.record_delivery(org.code, ds.name, p.label, delivery_sha, raw_manifest, landed)
        ledger.update(
            conn, sub, "land", "landed", landing_path=str(delivery_dir), rows_manifest=manifest_rows(manifest)
        )
        step.state = "landed"
        return step
    finally:
        conn.close()


def manifest_rows(manifest: dict) -> int:
    return sum(f["rows"] for f in manifest["files"])


def run_steps(
    org_code: str,
    dataset: str,
    period: str,
    *,
    now: dt.datetime | None = None,
    run_id: str | None = None,
    registry: Registry | None = None,
) -> Step:
    """All steps in order, outside Airflow (CLI ``anbar ingest``, tests). Waiting is not done here."""
    registry = registry or load_registry()
    step = probe(org_code, dataset, period, now=now or dt.datetime.now(dt.UTC), registry=registry)
    if step.state == "waiting":
        return step
    if step.state == "missing":
        step = record_missing(step, registry=registry)
    else:
        step = receive(step, run_id=run_id, registry=registry)
        step = process(step, registry=registry)
    return conclude(step, registry=registry)
