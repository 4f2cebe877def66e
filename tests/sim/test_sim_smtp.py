"""The SMTP sink: messages sent with smtplib land as .eml files."""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
from email.message import EmailMessage

import pytest

from anbar.sim.smtp_sink import SmtpSink, sanitise_subject


@pytest.fixture
def sink(loop, tmp_path):
    server = loop.run(SmtpSink.start(tmp_path / "mail"))
    yield server
    loop.run(server.close())


def test_message_is_written_as_eml(sink):
    msg = EmailMessage()
    msg["From"] = "anbar@warehouse.example.ir"
    msg["To"] = "data-desk@sso.example.ir"
    msg["Subject"] = "تحویل رد شد: sso/workplaces 1405-06 (missing_column)"
    msg.set_content("کد علت: missing_column\nشناسه‌ها پوشانده شده‌اند.")
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
        refused = smtp.send_message(msg, to_addrs=["data-desk@sso.example.ir", "team@anbar.ir"])
    assert refused == {}
    files = sorted(sink.maildir.glob("*.eml"))
    assert len(files) == 1
    name = files[0].name
    assert re.fullmatch(r"\d{8}T\d{12}Z-0001-.+\.eml", name), name
    assert "sso" in name and "/" not in name and " " not in name
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == msg["Subject"]
    assert "team@anbar.ir" in parsed["X-Envelope-To"]  # Bcc-like recipients are kept
    assert "missing_column" in parsed.get_content()
    assert not list(sink.maildir.glob(".*")), "no temporary files left"


def test_each_message_gets_its_own_file(sink):
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as smtp:
        for i in range(3):
            smtp.sendmail("a@b.ir", ["c@d.ir"], f"Subject: same\r\n\r\nbody {i}\r\n")
    files = sorted(sink.maildir.glob("*.eml"))
    assert [f.name.split("-")[1] for f in files] == ["0001", "0002", "0003"]
    assert [f.read_bytes().endswith(f"body {i}\r\n".encode()) for i, f in enumerate(files)] == [True] * 3


def test_subject_sanitising():
    assert sanitise_subject("../../etc/passwd") == "etc_passwd"
    assert sanitise_subject("") == "no-subject"
    assert sanitise_subject("a" * 200) == "a" * 60
    assert sanitise_subject("گزارش ماهانه: آبان") == "گزارش_ماهانه_آبان"
