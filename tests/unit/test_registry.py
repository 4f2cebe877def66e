"""The registry loads, and a broken file fails naming the file, the field and the reason."""

from __future__ import annotations

import shutil

import pytest
import yaml

from anbar.registry import RegistryError, default_root, load_registry


def test_the_committed_registry_loads():
    reg = load_registry()
    assert {"sso", "tvto"} <= set(reg.organisations)
    persons = reg.dataset("sso", "insured_persons")
    assert persons.key == "sso__insured_persons"
    assert persons.org == "sso"
    assert reg.org("sso").transport.kind == "sftp" and reg.org("tvto").transport.kind == "api"
    for ds in reg.datasets:
        for col in ds.columns:
            assert col.code_list is None or col.code_list in reg.code_lists


@pytest.fixture
def registry_copy(tmp_path):
    dest = tmp_path / "registry"
    shutil.copytree(default_root(), dest)
    return dest


def _edit(path, change):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (lambda d: d["datasets"][0].update(primary_key=["nope"]), "datasets.0", "primary_key names unknown columns"),
        (lambda d: d["datasets"][0]["columns"][0].update(type="float"), "datasets.0.columns.0.type", "Input should be"),
        (lambda d: d.update(focal_points=["not-an-email"]), "focal_points", "not an email address"),
        (lambda d: d["transport"].update(kind="ftp"), "transport", "does not match any of the expected tags"),
        (lambda d: d["datasets"][0].update(due_day=0), "datasets.0.due_day", "greater than or equal to 1"),
        (
            lambda d: d["datasets"][0]["columns"][1].update(surprise=1),
            "datasets.0.columns.1.surprise",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_a_broken_file_names_file_field_and_reason(registry_copy, change, field, reason):
    _edit(registry_copy / "sso.yml", change)
    with pytest.raises(RegistryError) as err:
        load_registry(registry_copy)
    message = str(err.value)
    assert "sso.yml" in message and field in message and reason in message


def test_unknown_code_list_is_reported(registry_copy):
    _edit(registry_copy / "sso.yml", lambda d: d["datasets"][0]["columns"][2].update(code_list="gender"))
    with pytest.raises(RegistryError, match=r"sso\.yml: datasets\.insured_persons\.columns\.sex\.code_list"):
        load_registry(registry_copy)


def test_file_name_must_match_the_code(registry_copy):
    (registry_copy / "sso.yml").rename(registry_copy / "social.yml")
    with pytest.raises(RegistryError, match="does not match the file name"):
        load_registry(registry_copy)


def test_unreadable_yaml(registry_copy):
    (registry_copy / "tvto.yml").write_text("code: [unclosed", encoding="utf-8")
    with pytest.raises(RegistryError, match=r"tvto\.yml: cannot read"):
        load_registry(registry_copy)


# The official classifications shipped as code lists (sources: registry/code_lists/SOURCES.md).
OFFICIAL_LISTS = {
    # name: (number of codes, digits per code)
    "isic4_division": (88, 2),
    "isic4_class": (419, 4),
    "isco08_unit_group": (436, 4),
    "iran_county": (482, 4),
}


@pytest.fixture(scope="module")
def committed_registry():
    return load_registry()


@pytest.mark.parametrize(("name", "size", "width"), [(n, s, w) for n, (s, w) in OFFICIAL_LISTS.items()])
def test_official_code_list_is_complete_and_well_formed(committed_registry, name, size, width):
    codes = committed_registry.code_lists[name].codes
    assert len(codes) == size
    assert all(len(code) == width and code.isascii() and code.isdigit() for code in codes), name
    for code, label in codes.items():
        assert label.fa.strip() and label.en.strip(), f"{name} {code} has an empty label"
        # Persian labels are already in the standard representation (conversion principle).
        assert not set(label.fa) & set("\u064a\u0649\u0643"), f"{name} {code}: Arabic yeh/kaf in {label.fa!r}"
    # PyYAML keeps the last of two equal keys silently: count the keys of the file itself.
    text = (default_root() / "code_lists" / f"{name}.yml").read_text(encoding="utf-8")
    top = yaml.compose(text)
    codes_node = next(value for key, value in top.value if key.value == "codes")
    keys = [key.value for key, _ in codes_node.value]
    assert len(keys) == len(set(keys)) == size


def test_isic_classes_fall_in_the_divisions(committed_registry):
    divisions = set(committed_registry.code_lists["isic4_division"].codes)
    classes = committed_registry.code_lists["isic4_class"].codes
    assert {code[:2] for code in classes} == divisions


def test_every_county_code_starts_with_a_province_code(committed_registry):
    provinces = set(committed_registry.code_lists["province"].codes)
    counties = committed_registry.code_lists["iran_county"].codes
    assert {code[:2] for code in counties} == provinces  # and every province has counties


def test_course_occupations_are_isco08_unit_groups(committed_registry):
    from anbar.sim.population import ISCO_COURSES

    assert committed_registry.dataset("tvto", "trainees").column("isco_code").code_list == "isco08_unit_group"
    unit_groups = committed_registry.code_lists["isco08_unit_group"].codes
    assert sorted({code for code, _, _ in ISCO_COURSES} - set(unit_groups)) == []


# -- committee extensions of a period's due date, the monthly-only rule, the ministry file -----------


def _extend(org_file, *extensions):
    """Put ``extensions`` on the organisation's first dataset."""
    _edit(org_file, lambda data: data["datasets"][0].update(extensions=list(extensions)))


@pytest.mark.parametrize(
    ("extension", "reason"),
    [
        ({"period": "2026-10", "due_date": "2026-12-20", "decision": "x"}, "not a Jalali year"),
        ({"period": "1405-13", "due_date": "2026-12-20", "decision": "x"}, "month out of range"),
        # 1405-07 is normally due on 2026-11-06 (Mehr ends 2026-10-22, due_day 15).
        ({"period": "1405-07", "due_date": "2026-11-06", "decision": "x"}, "is not after the normal one, 2026-11-06"),
        ({"period": "1405-07", "due_date": "2026-11-20", "decision": ""}, "at least 1 character"),
        ({"period": "1405-07", "due_date": "20 Aban", "decision": "x"}, "valid date"),
    ],
)
def test_an_invalid_extension_names_file_dataset_and_reason(registry_copy, extension, reason):
    _extend(registry_copy / "sso.yml", extension)
    with pytest.raises(RegistryError) as err:
        load_registry(registry_copy)
    assert "sso.yml" in str(err.value) and reason in str(err.value)


def test_two_extensions_of_the_same_period_are_refused(registry_copy):
    ext = {"period": "1405-07", "due_date": "2026-11-20", "decision": "a"}
    _extend(registry_copy / "sso.yml", ext, {**ext, "decision": "b"})
    with pytest.raises(RegistryError, match="two extensions"):
        load_registry(registry_copy)


def test_a_dataset_may_be_quarterly_or_yearly_and_its_extensions_name_its_periods(registry_copy):
    quarterly = {
        "period": "quarterly",
        "extensions": [{"period": "1405-Q2", "due_date": "2026-10-20", "decision": "q"}],
    }
    _edit(registry_copy / "sso.yml", lambda d: d["datasets"][0].update(quarterly))
    _edit(registry_copy / "tvto.yml", lambda d: d["datasets"][0].update(period="yearly"))
    registry = load_registry(registry_copy)
    assert registry.org("sso").datasets[0].period == "quarterly"
    assert registry.org("tvto").datasets[0].period == "yearly"

    monthly_label = {"period": "1405-06", "due_date": "2026-10-20", "decision": "q"}
    _edit(registry_copy / "sso.yml", lambda d: d["datasets"][0].update(extensions=[monthly_label]))
    with pytest.raises(RegistryError, match="'1405-06' is a monthly period; this dataset is quarterly"):
        load_registry(registry_copy)


def test_an_unknown_periodicity_is_refused(registry_copy):
    _edit(registry_copy / "tvto.yml", lambda d: d["datasets"][0].update(period="weekly"))
    with pytest.raises(RegistryError, match=r"(?s)tvto\.yml.*period: Input should be 'monthly', 'quarterly'"):
        load_registry(registry_copy)


def test_the_ministry_file_is_loaded_and_checked(registry_copy):
    ministry = load_registry().ministry
    assert ministry.minister_office and ministry.escalation
    assert (ministry.report_day, ministry.reminder_days_before, ministry.escalation_days_after) == (5, 3, 7)
    assert "ministry" not in load_registry().organisations

    _edit(registry_copy / "ministry.yml", lambda d: d.update(escalation=["nobody"]))
    with pytest.raises(RegistryError) as err:
        load_registry(registry_copy)
    assert "ministry.yml" in str(err.value) and "escalation" in str(err.value)

    (registry_copy / "ministry.yml").unlink()
    defaults = load_registry(registry_copy).ministry
    assert defaults.minister_office == [] and defaults.report_day == 5
