"""The bad-input corpus (tests/corpus/cases.yml) through the real delivery path.

Every case is published on the simulators' real SFTP server or HTTP API, pulled by ``anbar.ingest``
(probe, receive, load, validate, conclude) into one PostgreSQL warehouse of this module, and must reach
the outcome its index entry states: status, the ledger step that decided it, reason, message, rows. For
every case: rows in = rows loaded + rows rejected in the ledger, and in the tables once loaded; the bytes
received are in the landing archive under their sha256; a rejected delivery is in quarantine and its
feedback mail was sent. tests/corpus/README.md says how to add a case.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import uuid
from pathlib import Path

import psycopg2
import pytest
import yaml

from anbar import ddl, ingest
from anbar.landing import LandingArchive
from anbar.registry import load_registry

from .db import fetch, rendered

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
CASES = yaml.safe_load((CORPUS / "cases.yml").read_text(encoding="utf-8"))["cases"]
REGISTRY = load_registry()
PY_CODECS = {"utf-8": "utf-8-sig", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}
BOMB_MEMBER = gzip.compress(b"\0" * (1 << 20), mtime=0)  # 1 MiB of zeros in about 1 KB


# -- recipes: cases generated at test time (big, binary, links) -----------------------------------------


def _workplaces_csv(long_name: str | None = None, extra_header: str = "") -> bytes:
    text = (CORPUS / "well-formed-control" / "part-001.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    lines[0] += extra_header
    if long_name is not None:
        fields = lines[2].split(",")
        fields[2] = long_name
        lines[2] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode("utf-8")


def very_long_value(dest: Path, outside: Path, case: dict) -> None:
    (dest / "part-001.csv").write_bytes(_workplaces_csv(long_name="کارگاه " * 80_000 + "پایان"))


def very_long_header_line(dest: Path, outside: Path, case: dict) -> None:
    (dest / "part-001.csv").write_bytes(_workplaces_csv(extra_header="," + "x" * 70_000))  # 64 KiB is the limit


def gzip_bomb_file(dest: Path, outside: Path, case: dict) -> None:
    (dest / "part-001.csv").write_bytes(BOMB_MEMBER * 1024)  # 1 GiB once inflated


def gzip_files(dest: Path, outside: Path, case: dict) -> None:
    for path in sorted(dest.glob("*.csv")):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        path.unlink()


def _secret(outside: Path) -> Path:
    """A file outside the supplier's outbox (beyond its SFTP chroot), a valid delivery in itself."""
    outside.mkdir(parents=True, exist_ok=True)
    secret = outside / "secret.csv"
    secret.write_bytes(_workplaces_csv())
    return secret


def unlisted_symlink(dest: Path, outside: Path, case: dict) -> None:
    (dest / "shadow.csv").symlink_to(_secret(outside))


def symlink_outside(dest: Path, outside: Path, case: dict) -> None:
    (dest / "part-001.csv").symlink_to(_secret(outside))


def directory_as_file(dest: Path, outside: Path, case: dict) -> None:
    (dest / "part-001.csv").mkdir()
    (dest / "part-001.csv" / "inside.csv").write_bytes(_workplaces_csv())


def _api_manifest(case: dict, rows: int) -> bytes:
    return json.dumps(_manifest(case, rows=rows, page_size=500)).encode()


def api_gzip_bomb_page(dest: Path, outside: Path, case: dict) -> None:
    (dest / "manifest.json").write_bytes(_api_manifest(case, 3))
    (dest / "page-1.json.gz").write_bytes(gzip.compress(b'{"records": [', mtime=0) + BOMB_MEMBER * 1024)


def api_gzip_bomb_manifest(dest: Path, outside: Path, case: dict) -> None:
    (dest / "manifest.json").unlink()  # the pages stay
    (dest / "manifest.json.gz").write_bytes(gzip.compress(_api_manifest(case, 3)[:-1], mtime=0) + BOMB_MEMBER * 1024)


RECIPES = {
    f.__name__: f
    for f in (
        very_long_value,
        very_long_header_line,
        gzip_bomb_file,
        gzip_files,
        unlisted_symlink,
        symlink_outside,
        directory_as_file,
        api_gzip_bomb_page,
        api_gzip_bomb_manifest,
    )
}


# -- publishing a case on the simulators ------------------------------------------------------------------


def _records(data: bytes, encoding: str, delimiter: str) -> int:
    """Data records as Appendix C of the exchange standard counts them (0 if Python cannot read them)."""
    limit = csv.field_size_limit(1 << 30)  # a field of a megabyte is one record too
    try:
        text = data.decode(PY_CODECS.get(encoding, "utf-8"), errors="replace")
        return max(sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)) - 1, 0)
    except csv.Error:
        return 0
    finally:
        csv.field_size_limit(limit)


def _manifest(case: dict, **fields) -> dict:
    """The case's honest manifest (its identity, the approved schema version, ``fields``), then its lies."""
    ds = REGISTRY.dataset(case["org"], case["dataset"])
    honest = {"org": case["org"], "dataset": case["dataset"], "period": case["period"]}
    manifest = {**honest, "schema_version": ds.schema_version, **fields, **case.get("manifest", {})}
    for key in case.get("manifest_drop", []):
        manifest.pop(key)
    return manifest


def _sftp_manifest(case: dict, dest: Path) -> bytes:
    encoding, delimiter = case.get("encoding", "utf-8"), case.get("delimiter", ",")
    entries = []
    for name in case.get("files") or sorted(p.name for p in dest.iterdir() if p.name.endswith(".csv")):
        path = dest / name
        data = path.read_bytes() if path.is_file() else b""
        entry = {
            "name": name,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows": _records(data, encoding, delimiter),
        }
        entries.append({**entry, **case.get("file_overrides", {}).get(name, {})})
    manifest = _manifest(case, encoding=encoding, delimiter=delimiter, files=entries)
    return json.dumps(manifest, ensure_ascii=False, indent=2).encode("utf-8")


def _api_pages(case: dict, dest: Path, records: list) -> None:
    size = case.get("page_size", 2)
    pages = [records[i : i + size] for i in range(0, len(records), size)] or [[]]
    for n, page in enumerate(pages, 1):
        following = str(n + 1) if n < len(pages) else None
        body = {"records": page, "next_cursor": following}
        (dest / f"page-{n}.json").write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    manifest = _manifest(case, rows=len(records), page_size=size)
    (dest / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def publish(case: dict, sftp_root: Path, api_root: Path, outside: Path) -> Path:
    """Put one case where its supplier's server serves it; returns the directory."""
    source = CORPUS / case["id"]
    if case["transport"] == "sftp":
        outbox = REGISTRY.org(case["org"]).transport.outbox
        dest = sftp_root / case["org"] / outbox / case["dataset"] / case["period"]
    else:
        dest = api_root / case["org"] / case["dataset"] / case["period"]
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    files = sorted(source.iterdir()) if source.is_dir() else []
    for path in files:
        if path.name not in ("manifest.json", "records.json"):
            shutil.copyfile(path, dest / path.name)
    verbatim = source / "manifest.json"
    if case["transport"] == "api":
        if (source / "records.json").exists():
            _api_pages(case, dest, json.loads((source / "records.json").read_text(encoding="utf-8")))
        for path in [verbatim, *dest.glob("page-*.json")]:
            if path.exists():
                (dest / path.name).write_bytes(path.read_bytes().replace(b"{period}", case["period"].encode()))
    if case.get("recipe"):
        RECIPES[case["recipe"]](dest, outside, case)
    if case["transport"] == "sftp":
        manifest = verbatim.read_bytes() if verbatim.exists() else _sftp_manifest(case, dest)
        (dest / "manifest.json").write_bytes(manifest)  # last, as §5.3 asks
    return dest


# -- the module's warehouse and servers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(pg, simulators, tmp_path_factory):
    """One warehouse database and landing archive for the module; every case published once."""
    ids = [c["id"] for c in CASES]
    slots = [(c["org"], c["dataset"], c["period"]) for c in CASES]
    assert len(set(ids)) == len(ids) and len(set(slots)) == len(slots), "ids and periods must be unique"
    assert [i for i, c in zip(ids, CASES, strict=True) if not (CORPUS / i).is_dir() and not c.get("recipe")] == []
    name = f"wh_corpus_{uuid.uuid4().hex[:8]}"
    pg.create_database(name)
    landing = tmp_path_factory.mktemp("corpus-landing")
    outside = simulators.state_dir / "corpus-outside"
    published = {c["id"]: publish(c, simulators.sftp_root, simulators.recorded_api_root, outside) for c in CASES}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANBAR_WAREHOUSE_URL", pg.url(name))
        env.setenv("ANBAR_LANDING_DIR", str(landing))
        conn = psycopg2.connect(pg.dsn(name))
        ddl.bootstrap(conn, REGISTRY)
        yield conn, LandingArchive(landing), published
        conn.close()


def _ledger(conn, case: dict) -> dict:
    [sub] = fetch(
        conn,
        "select * from anbar.submissions where org = %s and dataset = %s and period = %s",
        case["org"],
        case["dataset"],
        case["period"],
    )
    return sub


def _count(conn, query: str, *args) -> int:
    return fetch(conn, query, *args)[0]["n"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus_case_reaches_its_ledger_outcome(corpus, case):
    conn, archive, published = corpus
    expect = case["expect"]
    step = ingest.run_steps(case["org"], case["dataset"], case["period"], registry=REGISTRY)
    sub = _ledger(conn, case)

    # The outcome the index states.
    outcome = (step.state, sub["status"], sub["reason"])
    assert outcome == (expect["status"], expect["status"], expect["reason"]), sub["message"]
    events = fetch(
        conn,
        "select step, status from anbar.submission_events where submission_id = %s order by event_id",
        sub["submission_id"],
    )
    assert [e["step"] for e in events if e["status"] == sub["status"]] == [expect["stage"]], events
    if expect["message"] is None:
        assert sub["message"] is None
    else:
        assert expect["message"] in sub["message"]
    rows = expect["rows"]
    figures = (sub["rows_manifest"], sub["rows_counted"], sub["rows_loaded"], sub["rows_rejected"])
    assert figures == (rows["in"], rows["counted"], rows["loaded"], rows["rejected"])
    if sub["status"] == "rejected":  # a supplier-readable reason: one short printable text, no traceback
        assert sub["message"].isprintable() and len(sub["message"]) <= 2000 and "Traceback" not in sub["message"]

    # rows counted = rows loaded + rows rejected wherever they were counted, in the ledger and the tables.
    if rows["counted"] is not None:
        assert sub["rows_counted"] == sub["rows_loaded"] + sub["rows_rejected"]
    ds = REGISTRY.dataset(case["org"], case["dataset"])
    part = f"{ds.key}_s{sub['submission_id']}"
    table = fetch(conn, "select to_regclass(%s) as t", f"clean.{part}")[0]["t"]
    if sub["status"] == "rejected":  # nothing of a rejected delivery was ever in the clean table
        assert table is None
        visible = f"select count(*) as n from clean.{ds.key} where _submission_id = %s"
        assert _count(conn, visible, sub["submission_id"]) == 0
    if (Path(sub["landing_path"]) / "rendering.json").exists():
        # Every delivered record is in the rendering of the values as delivered; once accepted, each is
        # either in the clean table or in the rejects, never both.
        delivered = rendered(sub["landing_path"])[0]["n"]
        rejected = _count(
            conn, "select count(*) as n from raw.rejected_rows where submission_id = %s", sub["submission_id"]
        )
        assert delivered == sub["rows_counted"]
        if sub["status"] == "accepted":
            clean = _count(conn, f'select count(*) as n from clean."{part}"')
            assert delivered == clean + rejected
            assert (delivered, clean, rejected) == (sub["rows_counted"], sub["rows_loaded"], sub["rows_rejected"])
            attached = fetch(
                conn,
                "select count(*) as n from pg_inherits where inhrelid = %s::regclass and inhparent = %s::regclass",
                f'clean."{part}"',
                f"clean.{ds.key}",
            )[0]["n"]
            assert attached == 1
    for expected in expect.get("stored", []):
        columns = [c for c in expected if c != "row"]
        [stored] = fetch(
            conn,
            f'select {", ".join(columns)} from clean."{part}" where _row_no = %s',
            expected["row"],
        )
        assert {c: (str(v) if hasattr(v, "isoformat") else v) for c, v in stored.items()} == {
            c: expected[c] for c in columns
        }

    # Nothing lost: what was received is in the archive under its sha256, read-only, beside the outcome.
    landing = Path(sub["landing_path"])
    source = published[case["id"]]
    if case["transport"] == "sftp":
        assert (landing / "manifest.json").read_bytes() == (source / "manifest.json").read_bytes()
    listing = json.loads((landing / "files.json").read_text())
    for entry in listing:
        data = (archive.root / entry["object"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
        assert not (archive.root / entry["object"]).stat().st_mode & 0o222
        if case["transport"] == "sftp":
            assert data == (source / entry["name"]).read_bytes()
    if any(e["status"] == "landed" for e in events) and case["transport"] == "sftp":
        assert len(listing) == len(json.loads((source / "manifest.json").read_bytes())["files"])
    report = json.loads((landing / "report.json").read_text())
    assert (report["status"], report["reason"]) == (sub["status"], sub["reason"])
    if sub["status"] == "rejected":
        quarantined = archive.root / "quarantine" / case["org"] / case["dataset"] / f"{case['period']}-v1"
        assert quarantined.resolve() == landing.resolve()

    # The supplier was told, once.
    [mail] = fetch(
        conn, "select subject, sent_at from anbar.notifications where submission_id = %s", sub["submission_id"]
    )
    assert mail["sent_at"] is not None and sub["status"].upper() in mail["subject"]
    if sub["reason"]:
        assert sub["reason"] in mail["subject"]
