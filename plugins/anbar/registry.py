"""The registry: organisations and their committee-approved datasets.

One YAML file per organisation under ``registry/``; code lists under
``registry/code_lists/``. It is the single source from which DAGs, raw and
clean tables, dbt sources and catalog rows are generated, so it is validated
strictly when loaded: a broken file fails with the file, the field and the
reason.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

IDENT = r"^[a-z][a-z0-9_]{0,40}$"
Ident = Annotated[str, Field(pattern=IDENT)]


class RegistryError(ValueError):
    """A registry file is missing, unreadable or invalid."""


class Calendar(StrEnum):
    jalali = "jalali"
    gregorian = "gregorian"


class AccessTier(StrEnum):
    """Access levels decided by the data-exchange committee (least to most restricted)."""

    open = "open"  # open aggregate
    internal = "internal"
    licensed = "licensed"  # licensed microdata, approved request with expiry
    enclave = "enclave"  # data enclave only
    confidential = "confidential"  # identifiers: never leave the raw schema


class ColumnType(StrEnum):
    text = "text"
    integer = "integer"
    bigint = "bigint"
    numeric = "numeric"
    date = "date"
    boolean = "boolean"

    @property
    def sql(self) -> str:
        return self.value


class Identifier(StrEnum):
    """Identifier kinds that carry a check digit (see docs/domain)."""

    person = "person"  # 10-digit national ID
    legal_entity = "legal_entity"  # 11-digit national ID of a legal entity


class Bilingual(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fa: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Ident
    type: ColumnType
    required: bool = False
    description: Bilingual
    access_tier: AccessTier = AccessTier.internal
    code_list: Ident | None = None
    identifier: Identifier | None = None
    calendar: Calendar | None = None  # for dates: the calendar the supplier writes them in
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check_kind(self) -> Column:
        if self.calendar is not None and self.type is not ColumnType.date:
            raise ValueError("calendar is only meaningful on a date column")
        if self.identifier is not None and self.type is not ColumnType.text:
            raise ValueError("an identifier column must have type text (leading zeros matter)")
        if (self.min is not None or self.max is not None) and self.type not in (
            ColumnType.integer,
            ColumnType.bigint,
            ColumnType.numeric,
        ):
            raise ValueError("min/max apply to numeric columns only")
        return self


class DeadlineExtension(BaseModel):
    """A one-off extension the committee approved for one period of one dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: str = Field(description="period label in the organisation's calendar, e.g. 1405-07")
    due_date: dt.date = Field(description="the new due date (Gregorian, YYYY-MM-DD)")
    decision: str = Field(min_length=1, description="the committee's decision reference, e.g. 1405/7/12-34")


class Dataset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Ident
    schema_version: int = Field(ge=1)
    description: Bilingual
    # Monthly by default (directive article 6); quarterly or yearly when the committee approved another
    # period for the dataset. Labels: 1405-07, 1405-Q3, 1405 (anbar.periods). A quarter or a year is
    # expected, ingested and alerted on in the monthly run of the month it ends with.
    period: Literal["monthly", "quarterly", "yearly"] = "monthly"
    due_day: int = Field(ge=1, le=90, description="days after the period ends")
    grace_days: int = Field(default=0, ge=0, le=90)
    access_tier: AccessTier
    primary_key: list[Ident] = Field(min_length=1)
    columns: list[Column] = Field(min_length=1)
    extensions: list[DeadlineExtension] = Field(default_factory=list)
    # Filled in by Organisation so a dataset knows its owner.
    org: str = ""

    @model_validator(mode="after")
    def _check_columns(self) -> Dataset:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {', '.join(dupes)}")
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"primary_key names unknown columns: {', '.join(missing)}")
        for key in self.primary_key:
            if not self.column(key).required:
                raise ValueError(f"primary key column {key!r} must be required")
        reserved = [n for n in names if n.startswith("_")]
        if reserved:
            raise ValueError(f"column names starting with '_' are reserved: {reserved}")
        return self

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def key(self) -> str:
        """``<org>__<dataset>``: the table name in raw and clean, and the Asset name."""
        return f"{self.org}__{self.name}"

    @property
    def date_columns(self) -> list[Column]:
        return [c for c in self.columns if c.type is ColumnType.date]

    @property
    def asset_uri(self) -> str:
        """URI of the Airflow Asset published when a submission of this dataset is accepted."""
        return f"anbar://warehouse/clean/{self.key}"


class SftpTransport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["sftp"]
    conn_id: str = Field(pattern=r"^[a-z0-9_]+$")
    outbox: str = Field(default="outbox", description="directory under the SFTP root")


class ApiTransport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["api"]
    conn_id: str = Field(pattern=r"^[a-z0-9_]+$")
    page_size: int = Field(default=1000, ge=1, le=100_000)


class Organisation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Ident
    names: Bilingual
    kind: Literal["fund", "insurer", "agency", "hq_unit"]
    focal_points: list[str] = Field(min_length=1)
    owner: str = Field(default="anbar-data-engineering", min_length=1)
    transport: SftpTransport | ApiTransport = Field(discriminator="kind")
    calendar: Calendar
    timezone: str = "Asia/Tehran"
    datasets: list[Dataset] = Field(min_length=1)

    @field_validator("focal_points")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        return _email_addresses(value)

    @model_validator(mode="after")
    def _bind_datasets(self) -> Organisation:
        names = [d.name for d in self.datasets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate dataset names: {', '.join(dupes)}")
        # Datasets are frozen; bind the owner once, here.
        bound = [d if d.org == self.code else d.model_copy(update={"org": self.code}) for d in self.datasets]
        object.__setattr__(self, "datasets", bound)
        for ds in bound:
            _check_extensions(ds, self.calendar)
        return self

    def dataset(self, name: str) -> Dataset:
        for ds in self.datasets:
            if ds.name == name:
                return ds
        raise KeyError(f"{self.code} has no dataset {name!r}")

    def date_calendar(self, column: Column) -> Calendar:
        return column.calendar or self.calendar


def _check_extensions(ds: Dataset, calendar: Calendar) -> None:
    """An extension names a period of the organisation's calendar, once, and moves its due date later."""
    from anbar.periods import Period  # anbar.periods imports this module

    seen: set[str] = set()
    for ext in ds.extensions:
        where = f"dataset {ds.name!r}: extension of {ext.period!r}"
        try:
            period = Period.parse(ext.period, calendar, ds.period)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if period.label in seen:
            raise ValueError(f"{where}: the period has two extensions")
        seen.add(period.label)
        normal = period.due_date(ds.due_day)
        if ext.due_date <= normal:
            raise ValueError(f"{where}: the new due date {ext.due_date} is not after the normal one, {normal}")


def _email_addresses(value: list[str]) -> list[str]:
    for address in value:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
            raise ValueError(f"not an email address: {address!r}")
    return value


class Ministry(BaseModel):
    """``registry/ministry.yml``: who gets the monthly report and escalations, and when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minister_office: list[str] = Field(default_factory=list, description="recipients of the monthly report")
    escalation: list[str] = Field(default_factory=list, description="recipients of overdue-delivery escalations")
    report_day: int = Field(default=5, ge=1, le=29, description="day of the Jalali month the report is sent")
    reminder_days_before: int = Field(default=3, ge=0, le=60, description="N: remind suppliers N days before due")
    escalation_days_after: int = Field(default=7, ge=1, le=90, description="M: escalate M days after the due date")

    @field_validator("minister_office", "escalation")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        return _email_addresses(value)


class CodeList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Ident
    description: Bilingual
    codes: dict[str, Bilingual] = Field(min_length=1)


class Registry(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: Path
    organisations: dict[str, Organisation]
    code_lists: dict[str, CodeList]
    ministry: Ministry = Field(default_factory=Ministry)

    @cached_property
    def datasets(self) -> list[Dataset]:
        return [d for org in self.organisations.values() for d in org.datasets]

    def org(self, code: str) -> Organisation:
        try:
            return self.organisations[code]
        except KeyError:
            raise KeyError(f"no organisation {code!r} in the registry at {self.root}") from None

    def dataset(self, org: str, name: str) -> Dataset:
        return self.org(org).dataset(name)


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid registry file"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(file)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> dict:
    try:
        # libyaml's loader: the classification code lists are ~8x faster to read than in pure Python.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping at the top level")
    return data


# The ministry's own settings, beside the organisation files (so no organisation may be coded "ministry").
# Optional: a registry without it (a test's, a new installation's) gets Ministry()'s defaults and no recipients.
MINISTRY_FILE = "ministry.yml"


def default_root() -> Path:
    env = os.environ.get("ANBAR_REGISTRY")
    if env:
        return Path(env)
    # plugins/anbar/registry.py -> repo root
    return Path(__file__).resolve().parents[2] / "registry"


def load_registry(root: Path | str | None = None) -> Registry:
    root = Path(root) if root is not None else default_root()
    if not root.is_dir():
        raise RegistryError(f"{root}: registry directory not found")
    code_lists: dict[str, CodeList] = {}
    for path in sorted((root / "code_lists").glob("*.yml")):
        try:
            cl = CodeList.model_validate(_read_yaml(path))
        except ValidationError as err:
            raise RegistryError(_format_error(path, err)) from None
        if cl.name != path.stem:
            raise RegistryError(f"{path}: name {cl.name!r} does not match the file name")
        code_lists[cl.name] = cl
    ministry = Ministry()
    ministry_path = root / MINISTRY_FILE
    if ministry_path.exists():
        try:
            ministry = Ministry.model_validate(_read_yaml(ministry_path))
        except ValidationError as err:
            raise RegistryError(_format_error(ministry_path, err)) from None
    orgs: dict[str, Organisation] = {}
    for path in sorted(root.glob("*.yml")):
        if path.name == MINISTRY_FILE:
            continue
        try:
            org = Organisation.model_validate(_read_yaml(path))
        except ValidationError as err:
            raise RegistryError(_format_error(path, err)) from None
        if org.code != path.stem:
            raise RegistryError(f"{path}: code {org.code!r} does not match the file name")
        for ds in org.datasets:
            for col in ds.columns:
                if col.code_list and col.code_list not in code_lists:
                    raise RegistryError(
                        f"{path}: datasets.{ds.name}.columns.{col.name}.code_list: "
                        f"unknown code list {col.code_list!r} (known: {', '.join(sorted(code_lists))})"
                    )
        orgs[org.code] = org
    if not orgs:
        raise RegistryError(f"{root}: no organisation files (*.yml)")
    return Registry(root=root, organisations=orgs, code_lists=code_lists, ministry=ministry)
