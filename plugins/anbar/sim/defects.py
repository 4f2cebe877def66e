"""Defective deliveries: which ones, and the row-level damage.

``SimConfig.defect_for(org, dataset, period)`` is the single source of truth
for which delivery is defective and how: an explicit override wins, otherwise a
stable hash of (seed, org, dataset, period) is compared with ``defect_share``.
Tests and the demo call it (or ``expected_defect``) to know what the warehouse
should find.

File-level defects (manifest, checksum, truncation, encoding, file names, row
counts) are applied when a delivery is written (``anbar.sim.delivery``) or
served (``anbar.sim.api_server``); row-level defects are applied to the rows
here, by ``apply_row_defect``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

from anbar.ids import is_valid_legal_entity_id, is_valid_person_id
from anbar.registry import Dataset, Identifier, Registry, load_registry
from anbar.sim.extracts import Row, is_text_column
from anbar.sim.population import Population, stable_random, stable_unit

DEFECTS: tuple[str, ...] = (
    "missing_manifest",
    "checksum_mismatch",
    "truncated_file",
    "wrong_encoding",
    "missing_column",
    "hostile_file_name",
    "row_count_mismatch",
    "duplicate_keys",
    "invalid_national_ids",
    "unknown_codes",
)
SFTP_DEFECTS: tuple[str, ...] = DEFECTS
API_DEFECTS: tuple[str, ...] = (
    "row_count_mismatch",
    "duplicate_keys",
    "invalid_national_ids",
    "unknown_codes",
)
# Defects that change the rows themselves (the rest change files or manifests).
ROW_DEFECTS: tuple[str, ...] = (
    "missing_column",
    "duplicate_keys",
    "invalid_national_ids",
    "unknown_codes",
)

HOSTILE_FILE_NAME = "../../etc/cron.d/evil.csv"
ROW_COUNT_SURPLUS = 7
DUPLICATE_SHARE = 0.02
INVALID_ID_SHARE = 0.03
UNKNOWN_CODE_SHARE = 0.02


def transport_defects(kind: str) -> tuple[str, ...]:
    if kind == "sftp":
        return SFTP_DEFECTS
    if kind == "api":
        return API_DEFECTS
    raise ValueError(f"unknown transport kind {kind!r}")


def _required_non_key(ds: Dataset) -> list[str]:
    return [c.name for c in ds.columns if c.required and c.name not in ds.primary_key]


def _identifier_column(ds: Dataset) -> str | None:
    ids = [c for c in ds.columns if c.identifier is not None]
    ids.sort(key=lambda c: c.identifier is not Identifier.person)
    return ids[0].name if ids else None


def _code_column(ds: Dataset) -> str | None:
    cols = [c.name for c in ds.columns if c.code_list and c.name not in ds.primary_key]
    if not cols:
        return None
    return "province" if "province" in cols else cols[0]


def applicable_defects(dataset: Dataset, kind: str) -> tuple[str, ...]:
    """Defects that can be made detectable for this dataset over this transport."""
    out = []
    for name in transport_defects(kind):
        if name == "wrong_encoding" and not any(is_text_column(c) for c in dataset.column_names):
            continue  # pure-ASCII rows read the same in UTF-8 and windows-1256
        if name == "missing_column" and not _required_non_key(dataset):
            continue
        if name == "invalid_national_ids" and _identifier_column(dataset) is None:
            continue
        if name == "unknown_codes" and _code_column(dataset) is None:
            continue
        out.append(name)
    return tuple(out)


def missing_column_for(dataset: Dataset, *, seed: int, period: str) -> str:
    """The required (non-key) column a ``missing_column`` delivery leaves out."""
    candidates = _required_non_key(dataset)
    if not candidates:
        raise ValueError(f"{dataset.key} has no required non-key column to leave out")
    u = stable_unit(seed, dataset.org, dataset.name, period, "missing_column")
    return candidates[int(u * len(candidates))]


def _unknown_code(codes: set[str], rng_value: float) -> str:
    sample = next(iter(codes))
    if all(c.isdigit() for c in codes):
        width = len(sample)
        pool = [f"{n:0{width}d}" for n in range(10**width - 1, -1, -1) if f"{n:0{width}d}" not in codes]
        preferred = [c for c in ("77", "88", "99", "9", "7", "0") if c in pool]
        pool = preferred or pool
    else:
        letters = string.ascii_uppercase if sample.isupper() else string.ascii_lowercase
        pool = [c for c in "XZQWY" + letters if c not in codes] or ["??"]
    return pool[int(rng_value * len(pool)) % len(pool)]


def _sample(rng, n_total: int, share: float) -> list[int]:
    if n_total == 0:
        return []
    n = min(n_total, max(1, round(share * n_total)))
    return sorted(rng.sample(range(n_total), n))


def apply_row_defect(
    rows: list[Row],
    dataset: Dataset,
    defect: str | None,
    *,
    registry: Registry,
    seed: int,
    period: str,
) -> list[Row]:
    """A damaged copy of ``rows`` for a row-level defect (other defects: a plain copy)."""
    rows = [dict(r) for r in rows]
    if defect not in ROW_DEFECTS:
        return rows
    rng = stable_random(seed, dataset.org, dataset.name, period, "defect", defect)
    if defect == "missing_column":
        gone = missing_column_for(dataset, seed=seed, period=period)
        for r in rows:
            r.pop(gone, None)
        return rows
    if defect == "duplicate_keys":
        non_key = [c for c in dataset.column_names if c not in dataset.primary_key]
        out = list(rows)
        for i in reversed(_sample(rng, len(rows), DUPLICATE_SHARE)):
            copy = dict(rows[i])
            if non_key and rng.random() < 0.5:  # same key, different content
                col = rng.choice(non_key)
                value = copy.get(col, "")
                copy[col] = str(int(value) + 1) if value.isdigit() else value[::-1]
            out.insert(rng.randrange(len(out) + 1), copy)
        return out
    if defect == "invalid_national_ids":
        col = _identifier_column(dataset)
        if col is None:
            raise ValueError(f"{dataset.key} has no identifier column")
        filled = [i for i, r in enumerate(rows) if r.get(col)]
        for j in _sample(rng, len(filled), INVALID_ID_SHARE):
            r = rows[filled[j]]
            value = r[col]
            r[col] = value[:-1] + str((int(value[-1]) + rng.randrange(1, 10)) % 10)
            assert not (is_valid_person_id(r[col]) and len(value) == 10)
            assert not (is_valid_legal_entity_id(r[col]) and len(value) == 11)
        return rows
    # unknown_codes
    col = _code_column(dataset)
    if col is None:
        raise ValueError(f"{dataset.key} has no code-list column")
    codes = set(registry.code_lists[dataset.column(col).code_list].codes)
    for i in _sample(rng, len(rows), UNKNOWN_CODE_SHARE):
        rows[i][col] = _unknown_code(codes, rng.random())
    return rows


def _override_key(key: str | tuple[str, str, str]) -> tuple[str, str, str]:
    parts = key.split("/") if isinstance(key, str) else list(key)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"override key must be org/dataset/period, got {key!r}")
    return (parts[0], parts[1], parts[2])


@dataclass(frozen=True)
class SimConfig:
    """Seed, population size and defect plan of a simulation."""

    seed: int = 42
    persons: int = 4000
    workplaces: int = 300
    defect_share: float = 0.0
    overrides: Mapping[tuple[str, str, str], str | None] = field(default_factory=dict)
    registry_root: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.defect_share <= 1.0:
            raise ValueError(f"defect_share must be within 0..1, got {self.defect_share}")
        normalised: dict[tuple[str, str, str], str | None] = {}
        for key, defect in dict(self.overrides).items():
            if defect in ("", "none", "None"):
                defect = None
            if defect is not None and defect not in DEFECTS:
                raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
            normalised[_override_key(key)] = defect
        object.__setattr__(self, "overrides", normalised)
        if self.registry_root is not None:
            object.__setattr__(self, "registry_root", Path(self.registry_root).resolve())

    @cached_property
    def registry(self) -> Registry:
        return _registry(self.registry_root)

    def population(self) -> Population:
        """The population of this seed (built once per process and size)."""
        return _population(self.seed, self.persons, self.workplaces, self.registry_root)

    def defect_for(self, org: str, dataset: str, period_label: str) -> str | None:
        """The defect of the delivery (org, dataset, period), or None for a good one."""
        organisation = self.registry.org(org)
        ds = organisation.dataset(dataset)
        kind = organisation.transport.kind
        key = (org, dataset, period_label)
        if key in self.overrides:
            defect = self.overrides[key]
            if defect is not None and defect not in applicable_defects(ds, kind):
                raise ValueError(
                    f"defect {defect!r} cannot be simulated for {org}/{dataset} over {kind} "
                    f"(possible: {', '.join(applicable_defects(ds, kind))})"
                )
            return defect
        if stable_unit(self.seed, "defect", org, dataset, period_label) >= self.defect_share:
            return None
        options = applicable_defects(ds, kind)
        u = stable_unit(self.seed, "defect-kind", org, dataset, period_label)
        return options[int(u * len(options))] if options else None


@lru_cache(maxsize=8)
def _registry(root: Path | None) -> Registry:
    """The registry at ``root`` (default: the project's), loaded once per process."""
    return load_registry(root)


@lru_cache(maxsize=8)
def _population(seed: int, persons: int, workplaces: int, root: Path | None) -> Population:
    return Population(seed, persons, workplaces, registry=_registry(root))


def expected_defect(
    org: str,
    dataset: str,
    period_label: str,
    *,
    seed: int = 42,
    defect_share: float = 0.0,
    overrides: Mapping[tuple[str, str, str] | str, str | None] | None = None,
    config: SimConfig | None = None,
) -> str | None:
    """The defect the simulator gives (org, dataset, period): None for a good delivery."""
    if config is None:
        config = SimConfig(seed=seed, defect_share=defect_share, overrides=overrides or {})
    return config.defect_for(org, dataset, period_label)
