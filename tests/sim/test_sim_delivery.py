"""SFTP deliveries (exchange standard v1): good ones are consistent, every defect is detectable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from anbar.registry import load_registry
from anbar.sim.defects import (
    API_DEFECTS,
    DEFECTS,
    HOSTILE_FILE_NAME,
    SFTP_DEFECTS,
    SimConfig,
    applicable_defects,
    expected_defect,
)
from anbar.sim.delivery import publish_sftp_periods, write_sftp_delivery
from anbar.sim.extracts import VARIANTS, extract_rows

from .helpers import DETECTED_AS, SSO_PERIODS, delivery_context, inspect_delivery


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def good(tmp_path_factory, population, registry, config):
    root = tmp_path_factory.mktemp("good")
    deliveries = publish_sftp_periods(root, population, registry, config, {"sso": SSO_PERIODS})
    return root, deliveries


def test_good_deliveries_are_consistent(good, registry):
    root, deliveries = good
    assert len(deliveries) == 6
    assert {d.variant for d in deliveries} == {v.name for v in VARIANTS}
    for d in deliveries:
        path = Path(d.path)
        assert path == root / "sso" / "outbox" / d.dataset / d.period
        assert d.defect is None
        ds = registry.dataset("sso", d.dataset)
        assert inspect_delivery(path, ds, registry) == set(), d
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        assert list(manifest) == [
            "org", "dataset", "period", "schema_version", "encoding", "delimiter", "files",
        ]  # fmt: skip
        assert sum(f["rows"] for f in manifest["files"]) == d.rows
        codec = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "windows-1256": "cp1256"}
        for f in manifest["files"]:
            data = (path / f["name"]).read_bytes()
            assert len(data) == f["bytes"]
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            text = data.decode(codec[manifest["encoding"]])
            header = text.split("\r\n", 1)[0].split(manifest["delimiter"])
            assert header == ds.column_names
            assert f["name"] == f"{d.dataset}_{d.period}_part-{manifest['files'].index(f) + 1:03d}.csv"
        assert sorted(p.name for p in path.iterdir()) == sorted(
            ["manifest.json", *(f["name"] for f in manifest["files"])]
        ), "no temporary files left behind"


def test_variants_look_like_their_supplier_systems(good):
    _root, deliveries = good
    by_variant = {d.variant: Path(d.path) for d in deliveries}

    def manifest(variant):
        return json.loads((by_variant[variant] / "manifest.json").read_text("utf-8"))

    def first_file(variant):
        return (by_variant[variant] / manifest(variant)["files"][0]["name"]).read_bytes()

    assert manifest("windows1256_arabic_letters")["encoding"] == "windows-1256"
    assert manifest("utf8_bom")["encoding"] == "utf-8-sig"
    assert first_file("utf8_bom").startswith(b"\xef\xbb\xbf")
    assert not first_file("utf8").startswith(b"\xef\xbb\xbf")
    assert manifest("utf8_semicolon")["delimiter"] == ";"
    assert len(manifest("utf8_multi_file")["files"]) == 3
    for variant in ("utf8", "utf8_local_digits", "utf8_multi_file", "utf8_semicolon"):
        assert manifest(variant)["encoding"] == "utf-8"
    local = first_file("utf8_local_digits").decode("utf-8")
    assert any("۰" <= c <= "۹" for c in local) and any("٠" <= c <= "٩" for c in local)


def test_windows_1256_workplaces_use_arabic_letter_forms(tmp_path, population, registry, config):
    # workplaces of 1405-05 is the windows-1256 variant (see the rotation)
    publish_sftp_periods(tmp_path, population, registry, config, {"sso": ["1405-05"]})
    path = tmp_path / "sso/outbox/workplaces/1405-05"
    manifest = json.loads((path / "manifest.json").read_text("utf-8"))
    assert manifest["encoding"] == "windows-1256"
    data = (path / manifest["files"][0]["name"]).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # really legacy bytes, not UTF-8 mislabelled
    text = data.decode("cp1256")
    assert "ي" in text and "ك" in text and "ی" not in text


def test_publishing_is_idempotent(tmp_path, good, population, registry, config):
    root, _ = good
    before = _tree(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    publish_sftp_periods(root, population, registry, config, {"sso": SSO_PERIODS})
    assert _tree(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes
    # a fresh run elsewhere, with a freshly built population, gives the same bytes
    fresh = SimConfig(seed=config.seed, persons=config.persons, workplaces=config.workplaces)
    from anbar.sim.population import Population

    pop = Population(fresh.seed, fresh.persons, fresh.workplaces)
    publish_sftp_periods(tmp_path, pop, registry, fresh, {"sso": SSO_PERIODS})
    assert _tree(tmp_path) == before


def test_other_seed_gives_other_bytes(tmp_path, good, registry, config):
    root, _ = good
    other = SimConfig(seed=config.seed + 1, persons=config.persons, workplaces=config.workplaces)
    publish_sftp_periods(tmp_path, other.population(), registry, other, {"sso": ["1405-06"]})
    name = "sso/outbox/insured_persons/1405-06/manifest.json"
    assert (tmp_path / name).read_bytes() != (root / name).read_bytes()


def _cases():
    registry = load_registry()
    for defect in DEFECTS:
        for dataset in ("insured_persons", "workplaces"):
            # e.g. no wrong_encoding for insured_persons: no free text, ASCII reads the same in every encoding
            if defect in applicable_defects(registry.dataset("sso", dataset), "sftp"):
                yield defect, dataset


def test_every_defect_can_be_shown_by_some_dataset():
    registry = load_registry()
    for kind, defects in (("sftp", SFTP_DEFECTS), ("api", API_DEFECTS)):
        shown = {d for ds in registry.datasets for d in applicable_defects(ds, kind)}
        assert shown == set(defects), kind


@pytest.mark.parametrize(("defect", "dataset"), list(_cases()))
@pytest.mark.parametrize("period", SSO_PERIODS)
def test_every_defect_is_detectable(tmp_path, population, registry, config, defect, dataset, period):
    cfg = SimConfig(
        seed=config.seed,
        persons=config.persons,
        workplaces=config.workplaces,
        overrides={("sso", dataset, period): defect},
    )
    deliveries = publish_sftp_periods(tmp_path, population, registry, cfg, {"sso": [period]})
    ds = registry.dataset("sso", dataset)
    for d in deliveries:
        context = delivery_context(population, registry, "sso", d.dataset, period)
        problems = inspect_delivery(Path(d.path), registry.dataset("sso", d.dataset), registry, context)
        if d.dataset == dataset:
            assert d.defect == defect
            assert DETECTED_AS[defect] <= problems, (defect, problems)
        else:
            assert d.defect is None and problems == set()
    path = tmp_path / "sso/outbox" / dataset / period
    everything = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in everything)
    if defect == "hostile_file_name":
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        assert manifest["files"][0]["name"] == HOSTILE_FILE_NAME
        assert (path / "evil.csv").is_file()
        assert not (tmp_path.parent / "etc").exists()
    if defect == "checksum_mismatch":
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        f = manifest["files"][0]
        assert (path / f["name"]).stat().st_size == f["bytes"], "sizes are right"
    if defect == "wrong_encoding":
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        assert manifest["encoding"] == "utf-8"
        data = (path / manifest["files"][0]["name"]).read_bytes()
        assert "ي".encode("cp1256") in data or "ك".encode("cp1256") in data
    if defect == "missing_column":
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        assert all(f["rows"] > 0 for f in manifest["files"])
    if defect == "row_count_mismatch":
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        good_rows = len(extract_rows(population, ds, period))
        assert sum(f["rows"] for f in manifest["files"]) == good_rows + 7


def test_a_corrected_delivery_replaces_the_defective_one(tmp_path, population, registry, config):
    bad = SimConfig(
        seed=config.seed,
        persons=config.persons,
        workplaces=config.workplaces,
        overrides={"sso/workplaces/1405-07": "missing_manifest"},
    )
    publish_sftp_periods(tmp_path, population, registry, bad, {"sso": ["1405-07"]})
    path = tmp_path / "sso/outbox/workplaces/1405-07"
    assert not (path / "manifest.json").exists()
    publish_sftp_periods(tmp_path, population, registry, config, {"sso": ["1405-07"]})
    assert inspect_delivery(path, registry.dataset("sso", "workplaces"), registry) == set()


def test_write_sftp_delivery_directly(tmp_path):
    rows = [{"a": "1", "b": 'x,"y"'}, {"a": "2", "b": ""}]
    out = write_sftp_delivery(tmp_path, "org1", "things", "2026-01", rows, encoding="utf-8", delimiter=",", files=2)
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["schema_version"] == 1 and [f["rows"] for f in manifest["files"]] == [1, 1]
    first = (out / "things_2026-01_part-001.csv").read_bytes()
    assert first == b'a,b\r\n1,"x,""y"""\r\n'  # RFC 4180 quoting, CRLF, header row
    with pytest.raises(ValueError, match="encoding"):
        write_sftp_delivery(tmp_path, "o", "d", "2026-01", rows, encoding="latin-1", delimiter=",")


def test_defect_choice_is_stable_and_follows_the_share(registry):
    periods = [f"14{y:02d}-{m:02d}" for y in range(0, 6) for m in range(1, 13)]
    cfg = SimConfig(seed=7, defect_share=0.3)
    picks = [cfg.defect_for("sso", ds, p) for ds in ("insured_persons", "workplaces") for p in periods]
    again = [
        SimConfig(seed=7, defect_share=0.3).defect_for("sso", ds, p)
        for ds in ("insured_persons", "workplaces")
        for p in periods
    ]
    assert picks == again
    share = sum(p is not None for p in picks) / len(picks)
    assert 0.18 <= share <= 0.42
    assert len({p for p in picks if p}) >= 6, "many kinds of defects"
    assert all(p is None for p in (SimConfig(seed=7).defect_for("sso", "workplaces", x) for x in periods))
    assert all(SimConfig(seed=7, defect_share=1.0).defect_for("sso", "workplaces", x) for x in periods)
    # insured_persons has no free text, so it never gets wrong_encoding
    assert "wrong_encoding" not in {cfg.defect_for("sso", "insured_persons", p) for p in periods}
    api = {SimConfig(seed=3, defect_share=1.0).defect_for("tvto", "trainees", f"2026-{m:02d}") for m in range(1, 13)}
    assert api <= set(API_DEFECTS) and len(api) >= 3


def test_overrides_win_and_are_validated():
    cfg = SimConfig(
        seed=7,
        defect_share=1.0,
        overrides={
            "sso/workplaces/1405-06": None,
            ("sso", "workplaces", "1405-07"): "unknown_codes",
        },
    )
    assert cfg.defect_for("sso", "workplaces", "1405-06") is None
    assert cfg.defect_for("sso", "workplaces", "1405-07") == "unknown_codes"
    assert expected_defect("sso", "workplaces", "1405-07", config=cfg) == "unknown_codes"
    assert expected_defect("sso", "workplaces", "1405-07", overrides={"sso/workplaces/1405-07": "missing_column"}) == (
        "missing_column"
    )
    with pytest.raises(ValueError, match="unknown defect"):
        SimConfig(overrides={"sso/workplaces/1405-06": "gremlins"})
    with pytest.raises(ValueError, match="cannot be simulated"):
        SimConfig(overrides={"sso/insured_persons/1405-06": "wrong_encoding"}).defect_for(
            "sso", "insured_persons", "1405-06"
        )
    with pytest.raises(ValueError, match="cannot be simulated"):
        SimConfig(overrides={"tvto/trainees/2026-09": "missing_manifest"}).defect_for("tvto", "trainees", "2026-09")
    assert set(applicable_defects_for_tvto()) == set(API_DEFECTS) - {"pensioners_hired"}
    with pytest.raises(ValueError, match="cannot be simulated"):
        SimConfig(overrides={"tvto/trainees/2026-09": "pensioners_hired"}).defect_for("tvto", "trainees", "2026-09")
    with pytest.raises(ValueError, match="cannot be simulated"):
        SimConfig(overrides={"sso/workplaces/1405-06": "out_of_range"}).defect_for("sso", "workplaces", "1405-06")
    for defect in ("invalid_dates", "count_drop", "rejuvenated_persons", "pensioners_hired"):
        key = f"sso/insured_persons/1405-06={defect}"
        cfg = SimConfig(overrides={key.split("=")[0]: defect})
        assert expected_defect("sso", "insured_persons", "1405-06", config=cfg) == defect


def applicable_defects_for_tvto():
    return applicable_defects(load_registry().dataset("tvto", "trainees"), "api")
