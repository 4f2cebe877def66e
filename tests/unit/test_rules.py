"""anbar's own rules: every reason code has a principle, and the exchange standard says the same."""

from __future__ import annotations

import re
from pathlib import Path

from anbar.feedback import build, render_html
from anbar.registry import load_registry
from anbar.rules import REASON_RULES, rule_for_reason
from anbar.suites import PRINCIPLES

STANDARD = Path(__file__).resolve().parents[2] / "docs" / "exchange-standard.md"


def test_every_reason_code_of_the_standard_has_the_principle_anbar_scores():
    text = STANDARD.read_text(encoding="utf-8")
    appendix = text[text.index("## Appendix B") : text.index("## Appendix C")]
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([a-z]+) / `([a-z._]+)` \|", appendix, re.M)
    assert len(rows) >= 15
    for code, principle, rule in rows:
        assert (rule_for_reason(code).principle, rule_for_reason(code).rule) == (principle, rule), code
    assert {code for code, _, _ in rows} | {"missing"} == set(REASON_RULES)
    assert all(r.principle in PRINCIPLES and r.fa and r.en for r in REASON_RULES.values())


def test_a_delivery_rejected_before_validation_is_reported_under_its_principle():
    registry = load_registry()
    org = registry.org("sso")
    ds = org.dataset("workplaces")
    submission = {
        "submission_id": 7,
        "period": "1404-04",
        "version": 1,
        "status": "rejected",
        "reason": "encoding_error",
        "message": "part-001.csv: byte 1234 is not valid utf-8",
        "rows_manifest": 120,
        "rows_loaded": 0,
        "rows_rejected": 120,
    }
    report = build(org, ds, submission, None)
    by_principle = {p["principle"]: p for p in report["principles"]}
    assert by_principle["conversion"]["failed"] == 1
    [rule] = by_principle["conversion"]["rules"]
    assert rule["rule"] == "conversion.encoding" and "byte 1234" in rule["note"]
    assert all(by_principle[p]["rules"] == [] for p in ("system", "consistency", "quality"))
    html = render_html(report)
    assert "REJECTED sso/workplaces 1404-04 v1: encoding_error" in html
    assert "کدگذاری فایل با کدگذاری اعلام‌شده مطابقت ندارد" in html
