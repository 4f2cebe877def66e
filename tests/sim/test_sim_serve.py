"""``python -m anbar.sim serve`` as a subprocess, used through the Airflow connections it writes."""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import pytest

from anbar.sim.defects import expected_defect
from anbar.sim.serve import start_simulators

from .helpers import (
    CSPF_PERIODS,
    DETECTED_AS,
    PERSONS,
    SEED,
    SSO_PERIODS,
    SWO_PERIODS,
    TVTO_PERIODS,
    WORKPLACES,
    context_problems,
    delivery_context,
    inspect_delivery,
    value_problems,
)

OVERRIDES = {"sso/workplaces/1405-06": "missing_column", "sso/insured_persons/1405-06": None}
SHARE = 0.5


def _start(state: Path):
    return start_simulators(
        state,
        seed=SEED,
        persons=PERSONS,
        workplaces=WORKPLACES,
        defect_share=SHARE,
        periods={"sso": SSO_PERIODS, "cspf": CSPF_PERIODS, "swo": SWO_PERIODS, "tvto": TVTO_PERIODS},
        overrides=OVERRIDES,
    )


def _outbox(state: Path) -> dict[str, str]:
    root = state / "sftp"
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    state = tmp_path_factory.mktemp("sim-state")
    handle = _start(state)
    yield handle
    handle.stop()


@pytest.fixture
def airflow_connections(sims, monkeypatch):
    for key, value in sims.airflow_env().items():
        monkeypatch.setenv(key, value)
    return sims.connections


def test_state_files_and_connection_format(sims):
    state = sims.state_dir
    ready = json.loads((state / "ready").read_text())
    assert ready["pid"] == sims.pid and set(ready["ports"]) == {"sftp", "api", "smtp"}
    conns = json.loads((state / "connections.json").read_text())
    assert conns == sims.connections
    assert set(conns) == {"anbar_sftp_sso", "anbar_sftp_cspf", "anbar_api_tvto", "anbar_api_swo", "anbar_smtp"}
    cspf = conns["anbar_sftp_cspf"]
    assert (cspf["login"], cspf["port"]) == ("cspf", ready["ports"]["sftp"])
    assert cspf["extra"] == conns["anbar_sftp_sso"]["extra"], "same pinned host key and client key"

    sftp = conns["anbar_sftp_sso"]
    assert (sftp["conn_type"], sftp["host"], sftp["login"]) == ("sftp", "127.0.0.1", "sso")
    assert sftp["port"] == ready["ports"]["sftp"]
    host_pub = (state / "keys" / "ssh_host_ed25519_key.pub").read_text().split()
    assert sftp["extra"]["host_key"] == f"{host_pub[0]} {host_pub[1]}"
    assert sftp["extra"]["host_key"].startswith("ssh-ed25519 ")
    assert sftp["extra"]["private_key"] == sims.client_key_path.read_text()
    assert sftp["extra"]["no_host_key_check"] is False
    assert "key_file" not in sftp["extra"], "SSHHook refuses key_file together with private_key"

    api = conns["anbar_api_tvto"]
    assert (api["conn_type"], api["schema"], api["port"]) == ("http", "http", ready["ports"]["api"])
    assert api["extra"] == {"Authorization": f"Bearer {api['password']}"}
    swo = conns["anbar_api_swo"]
    assert (swo["host"], swo["port"]) == (api["host"], api["port"]), "one API server, a token per organisation"
    assert swo["password"] != api["password"]

    smtp = conns["anbar_smtp"]
    assert smtp["conn_type"] == "smtp" and smtp["port"] == ready["ports"]["smtp"]
    assert smtp["extra"]["disable_tls"] is True and smtp["extra"]["disable_ssl"] is True

    env_lines = (state / "connections.env").read_text().splitlines()
    parsed = dict(shlex.split(line)[0].split("=", 1) for line in env_lines)
    assert parsed == sims.airflow_env()
    assert json.loads(parsed["AIRFLOW_CONN_ANBAR_SFTP_SSO"]) == sftp


def test_published_defects_are_the_expected_ones(sims):
    deliveries = sims.deliveries()
    # SWO's quarterly disability assessments: one quarter, 1405-Q2, closed by 1405-06
    assert len(deliveries) == 2 * len(SSO_PERIODS) + len(CSPF_PERIODS) + len(SWO_PERIODS) + 1 + len(TVTO_PERIODS)
    assert {d["period"] for d in deliveries if d["dataset"] == "disability_assessments"} == {"1405-Q2"}
    for d in deliveries:
        want = expected_defect(d["org"], d["dataset"], d["period"], seed=SEED, defect_share=SHARE, overrides=OVERRIDES)
        assert d["defect"] == want == sims.expected_defect(d["org"], d["dataset"], d["period"])
    by_key = {(d["org"], d["dataset"], d["period"]): d for d in deliveries}
    assert by_key["sso", "workplaces", "1405-06"]["defect"] == "missing_column"
    assert by_key["sso", "insured_persons", "1405-06"]["defect"] is None
    assert any(d["defect"] for d in deliveries if (d["org"], d["period"]) != ("sso", "1405-06"))


@pytest.mark.parametrize("org", ["sso", "cspf"])
def test_pull_every_sftp_delivery_through_sftphook(sims, airflow_connections, registry, population, tmp_path, org):
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    hook = SFTPHook(ssh_conn_id=f"anbar_sftp_{org}", conn_retry_attempts=1)
    assert hook.host_key is not None
    assert hook.list_directory("/") == ["outbox"], "chrooted to the organisation's own directory"
    pulled = 0
    for d in sims.deliveries():
        if d["org"] != org:
            continue
        remote = f"outbox/{d['dataset']}/{d['period']}"
        local = tmp_path / d["dataset"] / d["period"]
        local.mkdir(parents=True)
        for name in hook.list_directory(remote):
            hook.retrieve_file(f"{remote}/{name}", str(local / name))
        context = delivery_context(population, registry, org, d["dataset"], d["period"])
        problems = inspect_delivery(local, registry.dataset(org, d["dataset"]), registry, context)
        if d["defect"] is None:
            assert problems == set(), d
        else:
            assert DETECTED_AS[d["defect"]] <= problems, (d, problems)
        pulled += 1
    assert pulled == sum(len(registry.org(org).datasets) for _ in SSO_PERIODS)
    hook.close_conn()


def test_api_through_airflow_httphook(sims, airflow_connections):
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id="anbar_api_tvto")
    response = hook.run("/v1/extracts/trainees/2026-10/manifest")  # token from the extras
    manifest = response.json()
    assert (manifest["org"], manifest["period"], manifest["page_size"]) == ("tvto", "2026-10", 500)
    page = hook.run("/v1/extracts/trainees/2026-10").json()
    rows = next(d["rows"] for d in sims.deliveries() if (d["org"], d["period"]) == ("tvto", "2026-10"))
    assert len(page["records"]) == min(rows, 500)
    unpublished = hook.run("/v1/extracts/trainees/2026-11/manifest", extra_options={"check_response": False})
    assert unpublished.status_code == 404


def test_jalali_api_through_airflow_httphook(sims, airflow_connections, registry, population):
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id="anbar_api_swo")
    for period in SWO_PERIODS:
        manifest = hook.run(f"/v1/extracts/beneficiaries/{period}/manifest").json()
        assert (manifest["org"], manifest["period"], manifest["page_size"]) == ("swo", period, 500)
        records = hook.run(f"/v1/extracts/beneficiaries/{period}").json()["records"]
        delivery = next(d for d in sims.deliveries() if (d["org"], d["period"]) == ("swo", period))
        assert len(records) == delivery["rows"] > 0
        context = delivery_context(population, registry, "swo", "beneficiaries", period)
        ds = registry.dataset("swo", "beneficiaries")
        problems = value_problems(records, ds, registry) | context_problems(records, ds, context)
        if delivery["defect"] in (None, "row_count_mismatch"):
            assert problems == set(), (delivery, problems)
        else:
            assert DETECTED_AS[delivery["defect"]] <= problems, (delivery, problems)
    other = hook.run("/v1/extracts/trainees/2026-10/manifest", extra_options={"check_response": False})
    assert other.status_code == 404, "the SWO token sees SWO's datasets only"


def test_mail_through_airflow_smtphook(sims, airflow_connections):
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id="anbar_smtp") as hook:
        hook.send_email_smtp(
            to="data-desk@sso.example.ir",
            subject="anbar: delivery rejected",
            html_content="<p>missing_column</p>",
        )
    files = list(sims.maildir.glob("*.eml"))
    assert len(files) == 1 and "delivery_rejected" in files[0].name


def test_sigterm_stops_cleanly_and_a_restart_keeps_keys_and_bytes(sims):
    state = sims.state_dir
    before = dict(sims.connections)
    outbox = _outbox(state)
    assert sims.stop() == 0
    assert not (state / "ready").exists()
    again = _start(state)
    try:
        after = again.connections
        assert after["anbar_sftp_sso"]["extra"] == before["anbar_sftp_sso"]["extra"]
        assert after["anbar_sftp_cspf"]["extra"] == before["anbar_sftp_cspf"]["extra"]
        assert after["anbar_api_tvto"]["password"] == before["anbar_api_tvto"]["password"]
        assert after["anbar_api_swo"]["password"] == before["anbar_api_swo"]["password"]
        assert _outbox(state) == outbox, "byte-identical deliveries"
    finally:
        assert again.stop() == 0


def test_in_process_simulators(tmp_path, config):
    import httpx

    from anbar.sim.serve import run_simulators_in_thread

    with run_simulators_in_thread(
        tmp_path, config, {"sso": ["1405-06"], "tvto": ["2026-09"]}, api_page_size=7
    ) as handle:
        assert (tmp_path / "ready").exists()
        assert set(handle.ports) == {"sftp", "api", "smtp"}
        api = handle.connections["anbar_api_tvto"]
        response = httpx.get(
            f"http://127.0.0.1:{handle.ports['api']}/v1/extracts/trainees/2026-09/manifest",
            headers=api["extra"],
            trust_env=False,
        )
        assert response.json()["page_size"] == 7
        assert (tmp_path / "sftp/sso/outbox/workplaces/1405-06/manifest.json").exists()
        assert not (tmp_path / "sftp/sso/outbox/workplaces/1405-05").exists()
    assert not (tmp_path / "ready").exists()


def test_cli_plan_and_publish(tmp_path, capsys):
    from anbar.sim.__main__ import main

    args = ["--seed", "5", "--persons", "300", "--workplaces", "30", "--defect-share", "0"]
    args += ["--periods", "sso=1405-06", "--override", "sso/workplaces/1405-06=checksum_mismatch"]
    assert main(["plan", *args]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(d["dataset"], d["defect"]) for d in plan] == [
        ("insured_persons", None),
        ("workplaces", "checksum_mismatch"),
    ]
    assert main(["publish", "--out", str(tmp_path), *args]) == 0
    published = json.loads(capsys.readouterr().out)
    assert [d["defect"] for d in published] == [None, "checksum_mismatch"]
    assert (tmp_path / "sso/outbox/insured_persons/1405-06/manifest.json").exists()
    with pytest.raises(SystemExit):
        main(["plan", "--override", "sso/workplaces/1405-06=gremlins"])


def test_package_exports_resolve():
    import anbar.sim

    for name in anbar.sim.__all__:
        assert getattr(anbar.sim, name) is not None, name
    with pytest.raises(AttributeError):
        anbar.sim.nothing_here  # noqa: B018
