"""Supplier mails render bilingual, right-to-left Persian first, with masked samples."""

from __future__ import annotations

from anbar import notify
from anbar.registry import load_registry

REG = load_registry()
SSO = REG.org("sso")


def test_rejection_mail_names_reason_counts_and_masked_samples():
    summary = {
        "expectations": [
            {
                "success": False,
                "principle": "quality",
                "severity": "blocking",
                "type": "unexpected_rows_expectation",
                "description": {"en": "National ID has a valid check digit", "fa": "رقم کنترل کد ملی درست است"},
                "unexpected_count": 3,
                "samples": [{"_file": "p1.csv", "_row_no": 7, "national_id": "007******5"}],
            },
            {"success": True, "principle": "system", "severity": "blocking", "type": "x"},
        ]
    }
    mail = notify.rejection_mail(
        SSO,
        SSO.dataset("insured_persons"),
        submission_id=12,
        period="1404-08",
        version=2,
        reason="validation",
        message="1 blocking check(s) failed",
        rows_manifest=10,
        rows_loaded=0,
        rows_rejected=10,
        summary=summary,
    )
    assert mail.dedup_key == "rejected:12"
    assert "data-desk@sso.example.ir" in mail.recipients
    assert "REJECTED sso/insured_persons 1404-08 v2" in mail.subject
    html = mail.html
    assert html.index('dir="rtl"') < html.index('lang="en"')  # Persian first
    assert "p1.csv:7 national_id=007******5" in html
    assert "داده در بررسی استانداردها رد شد" in html and "کیفیت" in html
    assert "0076229645" not in html


def test_missing_mail_is_keyed_by_period_and_escapes_detail():
    mail = notify.missing_mail(SSO, SSO.dataset("workplaces"), "1404-01", "no manifest <b>here</b>")
    assert mail.dedup_key == "missing:sso/workplaces/1404-01"
    assert "&lt;b&gt;here&lt;/b&gt;" in mail.html and SSO.names.fa in mail.html
