"""One synthetic population behind every simulated supplier.

Persons, workplaces, employment spells (who is insured where, from when to
when), vocational training courses, civil-service pensions and welfare supports
are generated once per seed, as life histories over a fixed horizon, so that
every supplier's monthly extract is a consistent view of the same people: a
trainee whose course ended in October may be an insured employee at SSO in
December, a few pensioners of the CSPF take an insured job at SSO after they
retire, and the disability pension of an SWO beneficiary stops when they are
hired by an SSO-insured employer.

Randomness comes only from ``random.Random`` seeded with stable strings (and
SHA-256 for hashing); Python's ``hash()`` is never used, so the same seed gives
the same population in every process.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import random
from dataclasses import dataclass
from functools import cached_property

from anbar.ids import make_legal_entity_id, make_person_id
from anbar.registry import Registry, load_registry

# Ages are 16..75 on this day (1 Farvardin 1405).
REFERENCE_DATE = dt.date(2026, 3, 21)
# Life histories are simulated over this window; extracts outside it are empty.
HORIZON_START = dt.date(2012, 1, 1)
HORIZON_END = dt.date(2032, 12, 31)

WORK_AGE = (18, 65)
TRAINING_AGE = (16, 60)
WAGE_RANGE = (100_000_000, 600_000_000)  # monthly, rials

# Province weights (roughly proportional to population); codes missing here weigh 1.
PROVINCE_WEIGHTS = {
    "23": 13.3, "09": 6.4, "10": 5.1, "07": 4.9, "06": 4.7, "03": 3.9, "02": 3.3,
    "04": 3.3, "08": 3.2, "11": 2.8, "30": 2.7, "01": 2.5, "05": 1.95, "22": 1.78,
    "15": 1.76, "13": 1.74, "27": 1.87, "12": 1.6, "00": 1.4, "25": 1.29, "24": 1.27,
    "26": 1.27, "18": 1.16, "21": 1.14, "19": 1.06, "14": 0.95, "29": 0.77,
    "28": 0.86, "17": 0.71, "20": 0.7, "16": 0.58,
}  # fmt: skip
ISIC_WEIGHTS = {
    "A": 4, "B": 1, "C": 22, "D": 1, "E": 1, "F": 12, "G": 18, "H": 7, "I": 5, "J": 3,
    "K": 2, "L": 1, "M": 4, "N": 5, "O": 2, "P": 3, "Q": 4, "R": 1, "S": 3, "T": 0.5,
    "U": 0.2,
}  # fmt: skip
INSURANCE_TYPE_WEIGHTS = {"1": 80, "2": 5, "3": 6, "4": 5, "5": 4}
RESULT_WEIGHTS = {"P": 75, "F": 15, "A": 10}

# Civil-service pensions (CSPF). Civil servants are not insured at SSO, so pensioners are
# drawn from the persons without SSO employment (CIVIL_SERVANT_SHARE of those old enough),
# plus a few persons with SSO employment who retired from the civil service and were then
# hired by an SSO-insured employer (HIRED_PENSIONER_SHARE of those with a job started
# after 50): a pensioner who is also an active insured, legal and rare.
RETIREMENT_AGE = (50, 62)
CIVIL_SERVANT_SHARE = 0.3
HIRED_PENSIONER_SHARE = 0.05
# A toy population of a few thousand persons yields one or two new civil-service pensioners
# a month, all of them below the disclosure threshold. ``Population(civil_servants=N)`` adds
# N persons who spend their working life in the civil service (never insured at SSO) and
# retire at a steady pace over CIVIL_SERVICE_RETIREMENTS, so a demo's monthly marts can
# publish new pensioners. The default of 0 leaves a population exactly as it was.
CIVIL_SERVICE_RETIREMENTS = (dt.date(2022, 3, 21), dt.date(2030, 3, 21))
PENSION_TYPE_WEIGHTS = {"1": 78, "2": 7, "3": 15}  # retirement, disability, survivor
PENSION_RANGE = (90_000_000, 900_000_000)  # monthly, rials, in Jalali year PENSION_BASE_YEAR
PENSION_BASE_YEAR = 1404
PENSION_INDEXATION = 0.2  # yearly rise on 1 Farvardin

# Welfare supports (SWO), one spell per (person, support type) at a time, drawn after and
# independently of every history above. Codes of swo_support_type: 1 disability pension,
# 2 rehabilitation services, 3 home care allowance, 4 empowerment loan, 5 support of orphans
# and children without proper guardians, 6 pension of needy elderly persons, 7 residential care.
DISABILITY_SHARE = 0.06  # persons with a disability registered at SWO
CHILDHOOD_ONSET_SHARE = 0.45  # of them: disabled from birth or in childhood (onset before 18)
DISABILITY_TYPE_WEIGHTS = {"1": 38, "2": 10, "3": 10, "4": 4, "5": 17, "6": 10, "7": 3, "8": 8}
SEVERE_DISABILITY_TYPES = ("5", "7", "8")  # intellectual, autism, multiple: care at home or in a centre
DISABILITY_PENSION_SHARE = 0.6  # of the disabled, a disability pension from some time after registration
PENSION_STOPS_AT_HIRING = 0.7  # share of disability pensions that end when an SSO-insured job starts
REHABILITATION_SHARE = 0.7  # of the disabled, episodes of rehabilitation services
REHABILITATION_DAYS = (90, 540)  # length of an episode
REHABILITATION_GAP = 900  # mean days between episodes (at least 62: one episode of a type per month)
CARE_SHARE = 0.45  # of the severely disabled: home care allowance, or a residential centre (1 in 8)
LOAN_SHARE = 0.25  # of the disabled reaching 20: one empowerment loan, a beneficiary while it is repaid
LOAN_MONTHS = 36
ORPHAN_SHARE = 0.06  # persons supported as children (orphans, no proper guardian) until they turn 18
ORPHAN_END_AGE = 18
ELDERLY_AGE = 60
ELDERLY_SHARE = 0.2  # of the persons never insured at SSO nor pensioned by CSPF: a needy elderly pension
CASH_SUPPORTS = {  # monthly amount range in rials, in Jalali year SUPPORT_BASE_YEAR
    "1": (12_000_000, 30_000_000),
    "3": (20_000_000, 45_000_000),
    "5": (15_000_000, 35_000_000),
    "6": (8_000_000, 20_000_000),
}  # services (2, 7) and loans (4) pay nothing monthly
SUPPORT_BASE_YEAR = 1404
SUPPORT_INDEXATION = 0.2  # yearly rise on 1 Farvardin

# ISCO-08 unit groups of typical technical and vocational courses, with hours.
ISCO_COURSES: tuple[tuple[str, str, int], ...] = (
    ("7212", "جوشکاری برق", 240),
    ("7212", "جوشکاری با گاز محافظ", 180),
    ("7411", "برق‌کار ساختمان", 300),
    ("7412", "تعمیرکار موتورهای الکتریکی", 220),
    ("7231", "مکانیک خودرو", 400),
    ("7233", "تعمیرکار ماشین‌آلات کشاورزی", 260),
    ("7126", "لوله‌کشی آب و گاز", 200),
    ("7127", "تعمیرکار سیستم‌های تهویه", 240),
    ("7522", "کابینت‌سازی", 320),
    ("7115", "نجاری سفت‌کاری", 160),
    ("7531", "خیاطی لباس زنانه", 350),
    ("7318", "قالیبافی", 280),
    ("5120", "آشپزی", 250),
    ("5131", "پیشخدمت رستوران", 90),
    ("5141", "آرایشگری", 420),
    ("2512", "برنامه‌نویسی وب", 360),
    ("3512", "پشتیبانی فناوری اطلاعات", 180),
    ("3513", "شبکه‌های رایانه‌ای", 200),
    ("4120", "منشی‌گری و امور اداری", 120),
    ("4311", "حسابداری مالی", 240),
    ("7223", "تراشکاری", 300),
    ("7421", "تعمیرکار لوازم الکترونیکی", 280),
    ("7422", "تعمیرکار تلفن همراه", 150),
    ("6111", "کشت محصولات زراعی", 120),
    ("6121", "پرورش دام", 110),
    ("8322", "رانندگی پایه دو", 60),
    ("8211", "مونتاژکار", 100),
    ("3118", "نقشه‌کشی صنعتی", 220),
    ("7112", "بنایی", 200),
    ("7124", "عایق‌کاری ساختمان", 80),
    ("7512", "شیرینی‌پزی", 210),
    ("7516", "تولید محصولات لبنی", 90),
    ("5321", "کمک بهیار", 400),
    ("3434", "سرآشپز", 500),
    ("7543", "کنترل کیفیت محصولات", 120),
)

_WORKSHOP_KINDS = (("شرکت", 55), ("کارگاه", 30), ("شرکت تعاونی", 8), ("مؤسسه", 7))
_ACTIVITIES = {
    "A": ("کشت و صنعت", "دامپروری", "مرغداری", "پرورش ماهی", "گلخانه‌ای"),
    "B": ("معدنی", "استخراج سنگ آهک", "معادن شن و ماسه"),
    "C": (
        "صنایع غذایی",
        "تولیدی پوشاک",
        "صنایع فلزی",
        "قطعه‌سازی خودرو",
        "صنایع چوب",
        "تولید ظروف پلاستیکی",
        "داروسازی",
        "کاشی و سرامیک",
        "نساجی",
        "کیف و کفش",
    ),
    "D": ("تولید برق", "نیروگاهی"),
    "E": ("بازیافت پسماند", "خدمات آب و فاضلاب"),
    "F": ("ساختمانی", "عمرانی", "پیمانکاری تأسیسات", "انبوه‌سازی"),
    "G": ("بازرگانی", "پخش مواد غذایی", "لوازم خانگی", "تعمیرگاه خودرو", "فروشگاه زنجیره‌ای"),
    "H": ("حمل و نقل", "باربری", "انبارداری", "پیک موتوری"),
    "I": ("هتلداری", "رستوران", "تهیه غذای صنعتی"),
    "J": ("نرم‌افزاری", "فناوری اطلاعات", "چاپ و نشر"),
    "K": ("کارگزاری بیمه", "صرافی"),
    "L": ("مشاور املاک",),
    "M": ("مهندسی مشاور", "حسابرسی", "طراحی صنعتی", "آزمایشگاه کنترل کیفیت"),
    "N": ("خدمات پشتیبانی", "خدمات نظافتی", "نگهبانی و حفاظت"),
    "O": ("خدمات شهری",),
    "P": ("آموزشگاه فنی", "آموزشگاه زبان", "پیش‌دبستانی"),
    "Q": ("درمانگاه", "آزمایشگاه تشخیص طبی", "کلینیک دندانپزشکی", "خانه سالمندان"),
    "R": ("باشگاه ورزشی", "مجموعه فرهنگی"),
    "S": ("خشکشویی", "آرایشگاه", "خدمات فنی"),
    "T": ("خدمات منزل",),
    "U": ("دفتر نمایندگی",),
}
_BRANDS = (
    "کیمیا", "یکتا", "نیک‌اندیش", "پیشگامان", "آریا", "سپید", "ایران‌مهر", "کوثر", "البرز",
    "کاوه", "پارسیان", "کیان", "نوین", "یاس", "مهرگان", "سیمرغ", "زاگرس", "تکین", "پویا",
    "امید", "سینا", "دماوند", "کارون", "پیروزی", "بهین", "آینده‌سازان", "شایان", "رایان",
    "ستاره کویر", "هیرکان", "نیکان", "یاقوت", "کاشف", "کیهان", "پیمان", "رادین", "ارکان",
)  # fmt: skip
_SUFFIXES = (("", 60), ("(سهامی خاص)", 25), ("(مسئولیت محدود)", 15))


def stable_random(*parts: object) -> random.Random:
    """A ``random.Random`` seeded by a stable string built from ``parts``."""
    return random.Random("|".join(["anbar.sim", *map(str, parts)]))


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (SHA-256, never ``hash()``)."""
    digest = hashlib.sha256("|".join(["anbar.sim", *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class _Weighted:
    """A weighted choice among string keys, with precomputed cumulative weights."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.keys = list(weights)
        self.cum: list[float] = []
        total = 0.0
        for k in self.keys:
            total += weights[k]
            self.cum.append(total)

    def __call__(self, rng: random.Random) -> str:
        return rng.choices(self.keys, cum_weights=self.cum)[0]


_RESULTS = _Weighted(RESULT_WEIGHTS)


@dataclass(frozen=True, slots=True)
class Person:
    index: int
    national_id: str
    sex: str  # "1" male, "2" female
    birth_date: dt.date
    province: str


@dataclass(frozen=True, slots=True)
class Workplace:
    index: int
    workshop_code: str  # 10 digits
    legal_id: str  # 11 digits, "" for sole proprietors
    name: str
    isic_section: str
    province: str
    registered_on: dt.date
    weight: float  # relative size


@dataclass(frozen=True, slots=True)
class Employment:
    person: int
    workplace: int
    start: dt.date
    end: dt.date | None  # first day no longer employed; None = beyond the horizon
    wage: int  # monthly insured wage in rials
    insurance_type: str

    def overlap_days(self, start: dt.date, end: dt.date) -> int:
        """Days of employment within [start, end)."""
        lo = max(self.start, start)
        hi = min(self.end or end, end)
        return max(0, (hi - lo).days)


@dataclass(frozen=True, slots=True)
class Pension:
    person: int
    start: dt.date  # retirement date: the first day of the pension (after RETIREMENT_AGE[0])
    pension_type: str  # code list cspf_pension_type
    amount: int  # monthly, rials, in Jalali year PENSION_BASE_YEAR
    province: str

    def amount_in(self, jalali_year: int) -> int:
        """The monthly amount paid in a Jalali year (indexed yearly), rials."""
        factor = (1 + PENSION_INDEXATION) ** (jalali_year - PENSION_BASE_YEAR)
        return int(self.amount * factor) // 10_000 * 10_000


@dataclass(frozen=True, slots=True)
class Support:
    """A spell of one SWO support (or service) of one person."""

    person: int
    support_type: str  # code list swo_support_type
    start: dt.date
    end: dt.date | None  # first day without the support; None = beyond the horizon
    disability_type: str  # code list swo_disability_type, "" when the person has none registered
    county: str  # code list iran_county: the person's county of residence, in their province
    amount: int  # monthly, rials, in Jalali year SUPPORT_BASE_YEAR; 0 for services and loans

    def active(self, start: dt.date, end: dt.date) -> bool:
        """Whether the support runs on at least one day of [start, end)."""
        return self.start < end and (self.end is None or self.end > start)

    def amount_in(self, jalali_year: int) -> int | None:
        """The amount paid monthly in a Jalali year (indexed yearly), rials; None if nothing is paid."""
        if not self.amount:
            return None
        factor = (1 + SUPPORT_INDEXATION) ** (jalali_year - SUPPORT_BASE_YEAR)
        return int(self.amount * factor) // 10_000 * 10_000


@dataclass(frozen=True, slots=True)
class Course:
    code: str
    isco_code: str
    title: str
    hours: int


@dataclass(frozen=True, slots=True)
class Training:
    person: int
    course: Course
    province: str
    start: dt.date
    end: dt.date  # last day of the course (inclusive)
    result: str  # P passed, F failed, A absent


def _courses() -> tuple[Course, ...]:
    out = []
    seq: dict[str, int] = {}
    for isco, title, hours in ISCO_COURSES:
        seq[isco] = seq.get(isco, 0) + 1
        out.append(Course(f"{isco}-{20 + seq[isco]:02d}-{seq[isco]:03d}-1", isco, title, hours))
    return tuple(out)


COURSES = _courses()


class Population:
    """Persons, workplaces, employment spells and training courses for one seed."""

    def __init__(
        self,
        seed: int,
        persons: int = 4000,
        workplaces: int = 300,
        *,
        civil_servants: int = 0,
        registry: Registry | None = None,
    ) -> None:
        if persons < 1 or workplaces < 1:
            raise ValueError("a population needs at least one person and one workplace")
        if civil_servants < 0:
            raise ValueError("civil_servants cannot be negative")
        self.seed = seed
        registry = registry or _default_registry()
        self.province_codes = tuple(sorted(registry.code_lists["province"].codes))
        self.isic_sections = tuple(sorted(registry.code_lists["isic_section"].codes))
        self.insurance_types = tuple(sorted(registry.code_lists["sso_insurance_type"].codes))
        self._province = _Weighted({p: PROVINCE_WEIGHTS.get(p, 1.0) for p in self.province_codes})
        self._insurance = _Weighted({k: INSURANCE_TYPE_WEIGHTS.get(k, 1.0) for k in self.insurance_types})
        self._retiring: dict[int, dt.date] = {}  # civil servant's person index -> retirement date
        self.persons: tuple[Person, ...] = self._make_persons(persons)
        self.workplaces: tuple[Workplace, ...] = self._make_workplaces(workplaces)
        self._index_workplaces()
        employments: list[Employment] = []
        trainings: list[Training] = []
        for person in self.persons:
            self._life(person, employments, trainings)
        # Appended after every other life was drawn (own random stream, own indexes), so a
        # population with civil servants holds the one without them unchanged.
        self.persons += self._make_civil_servants(civil_servants)
        employments.sort(key=lambda e: (e.start, e.person, e.workplace))
        trainings.sort(key=lambda t: (t.end, t.person, t.course.code))
        self.employments: tuple[Employment, ...] = tuple(employments)
        self.trainings: tuple[Training, ...] = tuple(trainings)
        self._training_ends = [t.end for t in self.trainings]
        # After (and independent of) the histories above, so adding pensions changed none of them.
        pension_types = registry.code_lists.get("cspf_pension_type")
        self.pension_types = tuple(sorted(pension_types.codes)) if pension_types else tuple(PENSION_TYPE_WEIGHTS)
        self._pension_type = _Weighted({k: PENSION_TYPE_WEIGHTS.get(k, 1.0) for k in self.pension_types})
        self.pensions: tuple[Pension, ...] = self._make_pensions()
        self._pension_starts = [p.start for p in self.pensions]
        # After (and independent of) everything above, so adding welfare supports changed none of it.
        support_types = registry.code_lists.get("swo_support_type")
        self.support_types = (
            tuple(sorted(support_types.codes)) if support_types else ("1", "2", "3", "4", "5", "6", "7")
        )
        disability_types = registry.code_lists.get("swo_disability_type")
        self.disability_types = (
            tuple(sorted(disability_types.codes)) if disability_types else tuple(DISABILITY_TYPE_WEIGHTS)
        )
        self._disability_type = _Weighted({k: DISABILITY_TYPE_WEIGHTS.get(k, 1.0) for k in self.disability_types})
        counties = registry.code_lists.get("iran_county")
        self.counties_by_province: dict[str, tuple[str, ...]] = {
            province: tuple(sorted(c for c in (counties.codes if counties else ()) if c[:2] == province))
            for province in self.province_codes
        }
        self.supports: tuple[Support, ...] = self._make_supports()
        self._support_starts = [s.start for s in self.supports]

    @classmethod
    def scaled(cls, seed: int, scale: float = 1.0, **kwargs: object) -> Population:
        """4000 persons and 300 workplaces times ``scale``."""
        return cls(seed, max(1, round(4000 * scale)), max(1, round(300 * scale)), **kwargs)

    # -- generation -------------------------------------------------------------------------

    def _make_persons(self, n: int) -> tuple[Person, ...]:
        rng = stable_random(self.seed, "persons")
        seen: set[str] = set()
        out = []
        span = (add_years(REFERENCE_DATE, -16) - add_years(REFERENCE_DATE, -76)).days
        oldest = add_years(REFERENCE_DATE, -76) + dt.timedelta(days=1)
        while len(out) < n:
            # City prefix of the national ID: 001..008 (Tehran, leading zeros) for ~6%.
            prefix = rng.randrange(1, 9) if rng.random() < 0.06 else rng.randrange(10, 1000)
            national_id = make_person_id(prefix * 10**6 + rng.randrange(10**6))
            if national_id in seen:
                continue
            seen.add(national_id)
            out.append(
                Person(
                    index=len(out),
                    national_id=national_id,
                    sex="1" if rng.random() < 0.51 else "2",
                    birth_date=oldest + dt.timedelta(days=rng.randrange(span)),
                    province=self._province(rng),
                )
            )
        return tuple(out)

    def _make_civil_servants(self, n: int) -> tuple[Person, ...]:
        """Persons who retire from the civil service within CIVIL_SERVICE_RETIREMENTS, at a steady pace."""
        rng = stable_random(self.seed, "civil-servants")
        seen = {p.national_id for p in self.persons}
        first, last = CIVIL_SERVICE_RETIREMENTS
        lo, hi = RETIREMENT_AGE
        out: list[Person] = []
        while len(out) < n:
            prefix = rng.randrange(10, 1000)
            national_id = make_person_id(prefix * 10**6 + rng.randrange(10**6))
            if national_id in seen:
                continue
            seen.add(national_id)
            retirement = first + dt.timedelta(days=rng.randrange((last - first).days))
            born_earliest, born_latest = add_years(retirement, -hi), add_years(retirement, -lo)
            person = Person(
                index=len(self.persons) + len(out),
                national_id=national_id,
                sex="1" if rng.random() < 0.6 else "2",
                birth_date=born_earliest + dt.timedelta(days=rng.randrange((born_latest - born_earliest).days + 1)),
                province=self._province(rng),
            )
            self._retiring[person.index] = retirement
            out.append(person)
        return tuple(out)

    def _make_workplaces(self, n: int) -> tuple[Workplace, ...]:
        rng = stable_random(self.seed, "workplaces")
        codes: set[str] = set()
        legal_ids: set[str] = set()
        kinds = _Weighted(dict(_WORKSHOP_KINDS))
        suffixes = _Weighted(dict(_SUFFIXES))
        isic = _Weighted({s: ISIC_WEIGHTS.get(s, 1.0) for s in self.isic_sections})
        out = []
        while len(out) < n:
            code = str(rng.randrange(10**9, 10**10))
            if code in codes:
                continue
            codes.add(code)
            legal_id = ""
            if rng.random() >= 0.10:
                while not legal_id or legal_id in legal_ids:
                    legal_id = make_legal_entity_id(1_000_000_000 + rng.randrange(100_000_000))
                legal_ids.add(legal_id)
            section = isic(rng)
            kind = kinds(rng)
            activity = rng.choice(_ACTIVITIES.get(section, ("خدمات",)))
            brand = rng.choice(_BRANDS)
            suffix = suffixes(rng) if kind.startswith("شرکت") else ""
            name = " ".join(p for p in (kind, activity, brand, suffix) if p)
            roll = rng.random()
            if roll < 0.02:  # a few names that need CSV quoting
                name = f'{kind} "{brand}", {activity}'
            elif roll < 0.04:
                name = f"{kind} {activity} {brand}; شعبه {rng.randrange(2, 9)}"
            if rng.random() < 0.8:
                registered = dt.date(1988, 1, 1) + dt.timedelta(days=rng.randrange(8400))
            else:
                registered = dt.date(2011, 1, 1) + dt.timedelta(days=rng.randrange(5500))
            out.append(
                Workplace(
                    index=len(out),
                    workshop_code=code,
                    legal_id=legal_id,
                    name=name,
                    isic_section=section,
                    province=self._province(rng),
                    registered_on=registered,
                    weight=round(rng.lognormvariate(0, 1.1), 4),
                )
            )
        return tuple(out)

    def _index_workplaces(self) -> None:
        self._by_province: dict[str, tuple[list[Workplace], list[float]]] = {}
        groups: dict[str, list[Workplace]] = {}
        for w in self.workplaces:
            groups.setdefault(w.province, []).append(w)
        groups["*"] = list(self.workplaces)
        for key, ws in groups.items():
            cum, total = [], 0.0
            for w in ws:
                total += w.weight
                cum.append(total)
            self._by_province[key] = (ws, cum)
        self._by_registration = sorted(self.workplaces, key=lambda w: (w.registered_on, w.index))

    def _pick_workplace(self, rng: random.Random, province: str, start: dt.date, exclude: set[int]) -> Workplace:
        for _ in range(30):
            key = province if province in self._by_province and rng.random() < 0.75 else "*"
            ws, cum = self._by_province[key]
            w = rng.choices(ws, cum_weights=cum)[0]
            if w.registered_on <= start and w.index not in exclude:
                return w
        for w in self._by_registration:
            if w.index not in exclude:
                return w
        return self._by_registration[0]

    def _wage(self, rng: random.Random) -> int:
        lo, hi = WAGE_RANGE
        value = rng.lognormvariate(19.0, 0.45)  # median ~ 178 million rials
        return int(min(hi, max(lo, value)) // 10_000 * 10_000)

    def _course(self, rng: random.Random, person: Person, start: dt.date, out: list[Training]) -> Training:
        course = rng.choice(COURSES)
        hours_per_week = rng.choice((12, 16, 20, 24, 30, 40))
        days = max(5, round(course.hours / hours_per_week * 7))
        province = person.province if rng.random() < 0.9 else rng.choice(self.province_codes)
        training = Training(
            person=person.index,
            course=course,
            province=province,
            start=start,
            end=start + dt.timedelta(days=days - 1),
            result=_RESULTS(rng),
        )
        out.append(training)
        return training

    def _life(self, p: Person, employments: list[Employment], trainings: list[Training]) -> None:
        rng = stable_random(self.seed, "life", p.index)
        # Courses taken independently of the work history (students, upskilling).
        lo = max(HORIZON_START, add_years(p.birth_date, TRAINING_AGE[0]))
        hi = min(HORIZON_END, add_years(p.birth_date, TRAINING_AGE[1]))
        rate = 0.9 if p.birth_date > add_years(REFERENCE_DATE, -40) else 0.3  # per year
        t = lo + dt.timedelta(days=int(rng.expovariate(rate / 365)))
        while t < hi:
            self._course(rng, p, t, trainings)
            t += dt.timedelta(days=30 + int(rng.expovariate(rate / 365)))

        in_labour_force = rng.random() < (0.82 if p.sex == "1" else 0.34)
        work_from = max(HORIZON_START, add_years(p.birth_date, WORK_AGE[0]))
        work_to = min(HORIZON_END, add_years(p.birth_date, WORK_AGE[1]))
        if not in_labour_force or work_from >= work_to:
            return
        t = work_from
        employed = rng.random() < 0.8
        first = True
        recent: list[Employment] = []
        while t < work_to:
            if employed:
                start = t
                if first and t == HORIZON_START:  # left-censored: started before the horizon
                    seniority = (HORIZON_START - add_years(p.birth_date, WORK_AGE[0])).days
                    start = t - dt.timedelta(days=rng.randrange(max(1, min(seniority, 5500))))
                length = max(30, int(rng.expovariate(1 / 1500)))
                end: dt.date | None = max(t + dt.timedelta(days=30), start + dt.timedelta(length))
                if end >= work_to:
                    end = None if work_to >= HORIZON_END else work_to
                exclude = {e.workplace for e in recent if e.end is None or e.end > start - _GAP}
                w = self._pick_workplace(rng, p.province, start, exclude)
                job = Employment(p.index, w.index, start, end, self._wage(rng), self._insurance(rng))
                employments.append(job)
                recent = [job]
                if rng.random() < 0.05 and end is not None and (end - start).days > 120:
                    # A second, shorter job at another workplace at the same time.
                    s2 = start + dt.timedelta(days=rng.randrange((end - start).days // 2))
                    e2 = min(end, s2 + dt.timedelta(days=rng.randrange(60, 700)))
                    w2 = self._pick_workplace(rng, p.province, s2, {w.index} | exclude)
                    if w2.index != w.index:
                        second = Employment(p.index, w2.index, s2, e2, self._wage(rng), "1")
                        employments.append(second)
                        recent.append(second)
                if end is None:
                    return
                t = end
            else:
                gap = max(20, int(rng.expovariate(1 / 300)))
                age = (t - p.birth_date).days / 365.25
                if rng.random() < 0.5 and age < TRAINING_AGE[1]:
                    c_start = t + dt.timedelta(days=rng.randrange(0, max(1, min(60, gap // 2))))
                    training = self._course(rng, p, c_start, trainings)
                    after = (training.end - t).days
                    if training.result == "P" and rng.random() < 0.7:
                        gap = after + rng.randrange(10, 150)  # hired after the course
                    else:
                        gap = max(gap, after + rng.randrange(20, 240))
                t += dt.timedelta(days=gap)
            employed = not employed
            first = False

    def _make_pensions(self) -> tuple[Pension, ...]:
        jobs: dict[int, list[Employment]] = {}
        for e in self.employments:
            jobs.setdefault(e.person, []).append(e)
        lo, hi = RETIREMENT_AGE
        out = []
        for p in self.persons:
            rng = stable_random(self.seed, "pension", p.index)
            if p.index in self._retiring:
                province = p.province if rng.random() < 0.95 else rng.choice(self.province_codes)
                amount = self._pension_amount(rng)
                out.append(Pension(p.index, self._retiring[p.index], self._pension_type(rng), amount, province))
                continue
            earliest = add_years(p.birth_date, lo)
            if earliest >= HORIZON_END:
                continue
            mine = jobs.get(p.index, [])
            if not mine:  # never insured at SSO: a civil servant, perhaps
                if rng.random() >= CIVIL_SERVANT_SHARE:
                    continue
                start = earliest + dt.timedelta(days=rng.randrange((add_years(p.birth_date, hi) - earliest).days))
                kind = self._pension_type(rng)
            else:  # retired from the civil service, then hired by an SSO-insured employer
                if rng.random() >= HIRED_PENSIONER_SHARE:
                    continue
                later = [e for e in mine if e.start > earliest + dt.timedelta(days=60)]
                if not later:
                    continue
                job = later[0]
                start = max(earliest, job.start - dt.timedelta(days=rng.randrange(30, 720)))
                if any(e.start <= start and (e.end is None or e.end > start) for e in mine):
                    continue  # insured on the day of retirement: not a civil servant
                kind = "1" if "1" in self.pension_types else self.pension_types[0]
            if start >= HORIZON_END:
                continue
            amount = self._pension_amount(rng)
            province = p.province if rng.random() < 0.95 else rng.choice(self.province_codes)
            out.append(Pension(p.index, start, kind, amount, province))
        out.sort(key=lambda x: (x.start, x.person))
        return tuple(out)

    @staticmethod
    def _pension_amount(rng: random.Random) -> int:
        lo_amount, hi_amount = PENSION_RANGE
        return int(min(hi_amount, max(lo_amount, rng.lognormvariate(19.0, 0.4))) // 10_000 * 10_000)

    def county_of(self, person: Person) -> str:
        """The county of residence of a person: one of the counties of their province ("" if none known)."""
        options = self.counties_by_province.get(person.province, ())
        if not options:
            return ""
        return options[int(stable_unit(self.seed, "county", person.index) * len(options))]

    def _make_supports(self) -> tuple[Support, ...]:
        jobs: dict[int, list[dt.date]] = {}
        for e in self.employments:
            jobs.setdefault(e.person, []).append(e.start)
        pensioned = {p.person for p in self.pensions}
        out: list[Support] = []
        for p in self.persons:
            out.extend(self._supports_of(p, sorted(jobs.get(p.index, [])), p.index in pensioned))
        out.sort(key=lambda x: (x.start, x.person, x.support_type))
        return tuple(out)

    def _supports_of(self, p: Person, job_starts: list[dt.date], pensioned: bool) -> list[Support]:
        rng = stable_random(self.seed, "welfare", p.index)
        county = self.county_of(p)
        mine: list[Support] = []

        def add(kind: str, start: dt.date, end: dt.date | None, disability: str) -> None:
            if kind not in self.support_types or start >= HORIZON_END or (end is not None and end <= start):
                return
            lo, hi = CASH_SUPPORTS.get(kind, (0, 0))
            amount = rng.randrange(lo, hi + 1) // 10_000 * 10_000 if hi else 0
            mine.append(Support(p.index, kind, start, end, disability, county, amount))

        # A disability, registered at SWO some time after its onset (at birth or in childhood for some).
        disability, registered = "", None
        if rng.random() < DISABILITY_SHARE:
            disability = self._disability_type(rng)
            if rng.random() < CHILDHOOD_ONSET_SHARE:
                onset = p.birth_date + dt.timedelta(
                    days=rng.randrange((add_years(p.birth_date, 18) - p.birth_date).days)
                )
            else:
                onset = add_years(p.birth_date, 18) + dt.timedelta(days=rng.randrange(42 * 365))
            registered = onset + dt.timedelta(days=rng.randrange(30, 3 * 365))
        if registered is not None and registered < HORIZON_END:
            if rng.random() < DISABILITY_PENSION_SHARE:
                start = registered + dt.timedelta(days=rng.randrange(365))
                hired = [d for d in job_starts if d > start]
                end = hired[0] if hired and rng.random() < PENSION_STOPS_AT_HIRING else None
                add("1", start, end, disability)
            if rng.random() < REHABILITATION_SHARE:
                t = registered + dt.timedelta(days=rng.randrange(180))
                while t < HORIZON_END:
                    length = rng.randrange(*REHABILITATION_DAYS)
                    add("2", t, t + dt.timedelta(days=length), disability)
                    t += dt.timedelta(days=length + 62 + int(rng.expovariate(1 / REHABILITATION_GAP)))
            if disability in SEVERE_DISABILITY_TYPES and rng.random() < CARE_SHARE:
                start = registered + dt.timedelta(days=rng.randrange(2 * 365))
                add("7" if rng.random() < 1 / 8 else "3", start, None, disability)
            if disability not in SEVERE_DISABILITY_TYPES and rng.random() < LOAN_SHARE:
                start = max(registered, add_years(p.birth_date, 20)) + dt.timedelta(days=rng.randrange(15 * 365))
                add("4", start, _add_months(start, LOAN_MONTHS), disability)
        # Orphans and children without proper guardians, supported until they turn 18.
        if rng.random() < ORPHAN_SHARE:
            start = p.birth_date + dt.timedelta(days=rng.randrange(1, 14 * 365))
            shown = disability if registered is not None and registered <= start else ""
            add("5", start, add_years(p.birth_date, ORPHAN_END_AGE), shown)
        # Needy elderly persons: never insured at SSO nor pensioned by the CSPF.
        if not job_starts and not pensioned and rng.random() < ELDERLY_SHARE:
            start = add_years(p.birth_date, ELDERLY_AGE) + dt.timedelta(days=rng.randrange(10 * 365))
            shown = disability if registered is not None and registered <= start else ""
            add("6", start, None, shown)
        return mine

    # -- queries ----------------------------------------------------------------------------

    @cached_property
    def person_by_id(self) -> dict[str, Person]:
        return {p.national_id: p for p in self.persons}

    def employments_between(self, start: dt.date, end: dt.date) -> list[Employment]:
        """Employment spells with at least one day in [start, end)."""
        return [e for e in self.employments if e.start < end and (e.end is None or e.end > start)]

    def trainings_ending(self, start: dt.date, end: dt.date) -> list[Training]:
        """Courses whose last day is in [start, end)."""
        lo = bisect.bisect_left(self._training_ends, start)
        hi = bisect.bisect_left(self._training_ends, end)
        return list(self.trainings[lo:hi])

    def pensioners_before(self, day: dt.date) -> list[Pension]:
        """Pensions that started before ``day`` (pensions never stop in this simulation)."""
        return list(self.pensions[: bisect.bisect_left(self._pension_starts, day)])

    def supports_between(self, start: dt.date, end: dt.date) -> list[Support]:
        """Welfare supports running on at least one day of [start, end): the beneficiaries of a period."""
        started = self.supports[: bisect.bisect_left(self._support_starts, end)]
        return [s for s in started if s.end is None or s.end > start]

    def fingerprint(self) -> str:
        """SHA-256 over every generated record (equal fingerprints = identical populations)."""
        h = hashlib.sha256()
        for group in (self.persons, self.workplaces, self.employments, self.pensions, self.supports):
            h.update("\n".join(map(repr, group)).encode())
        h.update(
            "\n".join(
                repr((t.person, t.course.code, t.province, t.start, t.end, t.result)) for t in self.trainings
            ).encode()
        )
        return h.hexdigest()


_GAP = dt.timedelta(days=62)


def _add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (the last day of the month when it has no such day)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


_REGISTRY: Registry | None = None


def _default_registry() -> Registry:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = load_registry()
    return _REGISTRY
