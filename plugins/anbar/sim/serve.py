"""Run all simulated supplier systems: SFTP, HTTP API and the SMTP sink.

State directory layout::

    <state>/keys/ssh_host_ed25519_key(.pub)       SFTP host key (pinned by anbar)
    <state>/keys/anbar_client_ed25519_key(.pub)   anbar's SFTP client key
    <state>/keys/api_tokens.json                  bearer token per API organisation
    <state>/sftp/<org>/outbox/<dataset>/<period>/ SFTP deliveries (chroot of account <org>)
    <state>/api/<org>/<dataset>/<period>/         recorded API extracts, served as they are
    <state>/mail/                                 .eml files received by the SMTP sink
    <state>/connections.json                      Airflow connections, conn_id -> JSON form
    <state>/connections.env                       the same as AIRFLOW_CONN_<ID>='<json>' lines
    <state>/deliveries.json                       every published delivery and its defect
    <state>/ready                                 exists while all servers are listening

Keys and tokens are created once and reused, so connections stay valid across
restarts. ``start_simulators`` runs ``python -m anbar.sim serve`` as a
subprocess and waits for ``ready``; ``run_simulators_in_thread`` runs the same
servers inside the current process (faster, for tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anbar.registry import Registry
from anbar.sim._loop import LoopThread
from anbar.sim.api_server import ApiServer, api_delivery_rows, create_api_app
from anbar.sim.defects import SimConfig
from anbar.sim.delivery import Delivery, atomic_write, publish_sftp_periods
from anbar.sim.extracts import as_period, dataset_periods
from anbar.sim.faults import Faults
from anbar.sim.keys import KeyPair, ensure_keypair
from anbar.sim.sftp_server import SftpServer
from anbar.sim.smtp_sink import SmtpSink

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SMTP_CONN_ID = "anbar_smtp"
DEFAULT_PERIODS: dict[str, list[str]] = {
    "cspf": ["1405-05", "1405-06", "1405-07"],
    "sso": ["1405-05", "1405-06", "1405-07"],
    "swo": ["1405-05", "1405-06", "1405-07"],
    "tvto": ["2026-08", "2026-09", "2026-10"],
}


def ensure_tokens(path: Path, orgs: Sequence[str]) -> dict[str, str]:
    """Bearer token per organisation, generated once into ``path`` (mode 0600)."""
    tokens: dict[str, str] = {}
    if path.exists():
        tokens = json.loads(path.read_text(encoding="utf-8"))
    missing = [o for o in orgs if o not in tokens]
    if missing:
        for org in missing:
            tokens[org] = f"sim-{org}-{secrets.token_urlsafe(24)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(tokens, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    return {o: tokens[o] for o in orgs}


def airflow_env(connections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` environment variables (JSON form) for the connections."""
    return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in connections.items()}


def _normalise_periods(registry: Registry, periods: Mapping[str, Sequence[str]]):
    out: dict[str, list[str]] = {}
    for org, labels in periods.items():
        cal = registry.org(org).calendar
        out[org] = sorted({as_period(label, cal).label for label in labels})
    return out


class StateLayout:
    """Where the simulators keep their outboxes and mail under ``state_dir``."""

    state_dir: Path

    @property
    def sftp_root(self) -> Path:
        return self.state_dir / "sftp"

    @property
    def maildir(self) -> Path:
        return self.state_dir / "mail"

    @property
    def recorded_api_root(self) -> Path:
        """Recorded API extracts: ``<org>/<dataset>/<period>/`` served byte for byte (anbar.sim.api_server)."""
        return self.state_dir / "api"


class Simulators(StateLayout):
    """All servers in the current event loop: ``await start()`` ... ``await stop()``."""

    def __init__(
        self,
        state_dir: Path | str,
        config: SimConfig,
        periods: Mapping[str, Sequence[str]] | None = None,
        *,
        sftp_port: int = 0,
        api_port: int = 0,
        smtp_port: int = 0,
        api_page_size: int | None = None,
        key_kind: str = "ed25519",
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.config = config
        self.registry = config.registry
        self.periods = _normalise_periods(self.registry, DEFAULT_PERIODS if periods is None else periods)
        self.requested_ports = {"sftp": sftp_port, "api": api_port, "smtp": smtp_port}
        self.api_page_size = api_page_size
        self.key_kind = key_kind
        self.connections: dict[str, dict] = {}
        self.deliveries: list[Delivery] = []
        self.ports: dict[str, int] = {}
        self._sftp: SftpServer | None = None
        self._api: ApiServer | None = None
        self._smtp: SmtpSink | None = None
        self.faults = Faults()  # armed by the fault tests (anbar.sim.faults)

    @property
    def ready_path(self) -> Path:
        return self.state_dir / "ready"

    def _orgs(self, kind: str) -> list[str]:
        return [c for c, o in self.registry.organisations.items() if o.transport.kind == kind]

    def prepare(self) -> None:
        """Keys, tokens and SFTP outboxes (no servers)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ready_path.unlink(missing_ok=True)
        keys = self.state_dir / "keys"
        kind = self.key_kind
        self.host_key: KeyPair = ensure_keypair(keys / f"ssh_host_{kind}_key", kind, "anbar-sim")
        self.client_key: KeyPair = ensure_keypair(keys / f"anbar_client_{kind}_key", kind, "anbar@warehouse")
        self.tokens = ensure_tokens(keys / "api_tokens.json", self._orgs("api"))
        population = self.config.population()
        self._clean_outboxes()
        self.deliveries = publish_sftp_periods(self.sftp_root, population, self.registry, self.config, self.periods)
        for org in self._orgs("api"):
            organisation = self.registry.org(org)
            for ds in organisation.datasets:
                for label in dataset_periods(organisation, ds, self.periods.get(org, [])):
                    rows, defect = api_delivery_rows(population, self.registry, self.config, org, ds.name, label)
                    self.deliveries.append(Delivery(org, ds.name, label, "api", defect, len(rows)))
        self.maildir.mkdir(parents=True, exist_ok=True)

    def _clean_outboxes(self) -> None:
        """Remove deliveries of an earlier run that are not in this run's plan."""
        for org in self._orgs("sftp"):
            organisation = self.registry.org(org)
            outbox = self.sftp_root / org / organisation.transport.outbox
            if not outbox.is_dir():
                continue
            for ds_dir in outbox.iterdir():
                if not ds_dir.is_dir():
                    continue
                known = {ds.name: ds for ds in organisation.datasets}
                wanted = set(self.periods.get(org, []))
                if ds_dir.name in known:
                    wanted = set(dataset_periods(organisation, known[ds_dir.name], self.periods.get(org, [])))
                for period_dir in ds_dir.iterdir():
                    if period_dir.is_dir() and period_dir.name not in wanted:
                        shutil.rmtree(period_dir)

    async def start(self) -> dict[str, dict]:
        self.prepare()
        population = self.config.population()
        try:
            self._sftp = await SftpServer.start(
                self.sftp_root,
                self.host_key.private_path,
                {org: [self.client_key.public_line] for org in self._orgs("sftp")},
                host=HOST,
                port=self.requested_ports["sftp"],
                faults=self.faults,
            )
            app = create_api_app(
                population,
                self.registry,
                self.config,
                self.periods,
                self.tokens,
                page_size=self.api_page_size,
                faults=self.faults,
                recorded_root=self.recorded_api_root,
            )
            self._api = await ApiServer.start(app, host=HOST, port=self.requested_ports["api"])
            self._smtp = await SmtpSink.start(self.maildir, host=HOST, port=self.requested_ports["smtp"])
        except BaseException:
            await self.stop()
            raise
        self.ports = {"sftp": self._sftp.port, "api": self._api.port, "smtp": self._smtp.port}
        self.connections = self._connections()
        self._write_state()
        return self.connections

    def _connections(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for org in self._orgs("sftp"):
            transport = self.registry.org(org).transport
            out[transport.conn_id] = {
                "conn_type": "sftp",
                "description": f"simulated SFTP outbox of {org} (anbar.sim)",
                "host": HOST,
                "port": self.ports["sftp"],
                "login": org,
                "extra": {
                    "host_key": self.host_key.host_key,
                    "private_key": self.client_key.private_openssh,
                    "no_host_key_check": False,
                    "allow_host_key_change": False,
                    "look_for_keys": False,
                    "conn_timeout": 10,
                },
            }
        for org in self._orgs("api"):
            transport = self.registry.org(org).transport
            token = self.tokens[org]
            out[transport.conn_id] = {
                "conn_type": "http",
                "description": f"simulated extract API of {org} (anbar.sim)",
                "host": HOST,
                "port": self.ports["api"],
                "schema": "http",
                "password": token,
                "extra": {"Authorization": f"Bearer {token}"},
            }
        out[SMTP_CONN_ID] = {
            "conn_type": "smtp",
            "description": "simulated mail server: messages land in <state>/mail (anbar.sim)",
            "host": HOST,
            "port": self.ports["smtp"],
            "extra": {
                "disable_tls": True,
                "disable_ssl": True,
                "from_email": "anbar@warehouse.example.ir",
                "timeout": 30,
            },
        }
        return out

    def _write_state(self) -> None:
        dumps = lambda obj: (json.dumps(obj, ensure_ascii=False, indent=2) + "\n").encode()  # noqa: E731
        atomic_write(self.state_dir / "connections.json", dumps(self.connections))
        env_lines = "".join(f"{k}={shlex.quote(v)}\n" for k, v in airflow_env(self.connections).items())
        atomic_write(self.state_dir / "connections.env", env_lines.encode())
        os.chmod(self.state_dir / "connections.json", 0o600)
        os.chmod(self.state_dir / "connections.env", 0o600)
        plan = {
            "seed": self.config.seed,
            "persons": self.config.persons,
            "workplaces": self.config.workplaces,
            "civil_servants": self.config.civil_servants,
            "defect_share": self.config.defect_share,
            "overrides": {"/".join(k): v for k, v in sorted(self.config.overrides.items())},
            "periods": self.periods,
            "deliveries": [d.as_dict() for d in self.deliveries],
        }
        atomic_write(self.state_dir / "deliveries.json", dumps(plan))
        ready = {"pid": os.getpid(), "ports": self.ports}
        atomic_write(self.ready_path, dumps(ready))

    async def stop_smtp(self) -> None:
        """Take the mail server down (an outage): connections to its port are refused."""
        if self._smtp is not None:
            await self._smtp.close()
            self._smtp = None

    async def start_smtp(self) -> None:
        """Bring the mail server back on its port, with the same mailbox."""
        if self._smtp is None:
            self._smtp = await SmtpSink.start(self.maildir, host=HOST, port=self.ports["smtp"])

    async def stop(self) -> None:
        self.ready_path.unlink(missing_ok=True)
        for server in (self._api, self._sftp, self._smtp):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.close()
        self._api = self._sftp = self._smtp = None


class SimulatorHandle(StateLayout):
    """What the demo and the tests get back: connections, paths, defects, ``stop()``."""

    state_dir: Path
    config: SimConfig
    periods: dict[str, list[str]]
    connections: dict[str, dict]

    @property
    def ports(self) -> dict[str, int]:
        """Listening ports: ``{"sftp": ..., "api": ..., "smtp": ...}``."""
        raise NotImplementedError

    @property
    def client_key_path(self) -> Path:
        """anbar's SFTP client private key (alternative to the ``private_key`` extra)."""
        return next((self.state_dir / "keys").glob("anbar_client_*_key"))

    def connections_by_type(self, conn_type: str) -> list[dict]:
        return [c for c in self.connections.values() if c["conn_type"] == conn_type]

    def airflow_env(self) -> dict[str, str]:
        """``AIRFLOW_CONN_<ID>`` variables for every connection (JSON form)."""
        return airflow_env(self.connections)

    def deliveries(self) -> list[dict]:
        plan = json.loads((self.state_dir / "deliveries.json").read_text(encoding="utf-8"))
        return plan["deliveries"]

    def expected_defect(self, org: str, dataset: str, period: str) -> str | None:
        return self.config.defect_for(org, dataset, period)

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class InProcessSimulators(SimulatorHandle):
    """The servers running on an event loop in a background thread of this process."""

    def __init__(self, sims: Simulators, loop: LoopThread) -> None:
        self._sims = sims
        self._loop = loop
        self.state_dir = sims.state_dir
        self.config = sims.config
        self.periods = sims.periods
        self.connections = sims.connections
        self.faults = sims.faults

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._sims.ports)

    def stop_smtp(self) -> None:
        self._loop.run(self._sims.stop_smtp(), timeout=30)

    def start_smtp(self) -> None:
        self._loop.run(self._sims.start_smtp(), timeout=30)

    @contextlib.contextmanager
    def smtp_outage(self):
        """The mail server is down inside the block and back after it, whatever happened."""
        self.stop_smtp()
        try:
            yield
        finally:
            self.start_smtp()

    def stop(self) -> None:
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self._sims.stop(), timeout=30)
        finally:
            self._loop.close()


def run_simulators_in_thread(
    state_dir: Path | str,
    config: SimConfig | None = None,
    periods: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> InProcessSimulators:
    """Start all servers in this process (background thread) and return a handle."""
    sims = Simulators(state_dir, config or SimConfig(), periods, **kwargs)
    loop = LoopThread()
    try:
        loop.run(sims.start(), timeout=120)
    except BaseException:
        loop.close()
        raise
    return InProcessSimulators(sims, loop)


class SimulatorProcess(SimulatorHandle):
    """``python -m anbar.sim serve`` running as a subprocess."""

    def __init__(self, proc: subprocess.Popen, state_dir: Path, config: SimConfig) -> None:
        self.proc = proc
        self.state_dir = state_dir
        self.config = config
        self.connections = json.loads((state_dir / "connections.json").read_text("utf-8"))
        plan = json.loads((state_dir / "deliveries.json").read_text("utf-8"))
        self.periods = plan["periods"]
        self._ports = json.loads((state_dir / "ready").read_text("utf-8"))["ports"]

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._ports)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def serve_command(
    state_dir: Path | str,
    config: SimConfig,
    periods: Mapping[str, Sequence[str]],
    *,
    sftp_port: int = 0,
    api_port: int = 0,
    smtp_port: int = 0,
    api_page_size: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The command line of ``python -m anbar.sim serve`` for these settings."""
    cmd = [python, "-m", "anbar.sim", "serve", "--state-dir", str(state_dir)]
    cmd += ["--sftp-port", str(sftp_port), "--api-port", str(api_port)]
    cmd += ["--smtp-port", str(smtp_port), "--seed", str(config.seed)]
    cmd += ["--defect-share", repr(config.defect_share)]
    cmd += ["--persons", str(config.persons), "--workplaces", str(config.workplaces)]
    cmd += ["--civil-servants", str(config.civil_servants)]
    if config.registry_root is not None:
        cmd += ["--registry", str(config.registry_root)]
    for org, labels in periods.items():
        cmd += ["--periods", f"{org}={','.join(labels)}"]
    for (org, dataset, period), defect in config.overrides.items():
        cmd += ["--override", f"{org}/{dataset}/{period}={defect or 'none'}"]
    if api_page_size:
        cmd += ["--api-page-size", str(api_page_size)]
    return cmd


def start_simulators(
    state_dir: Path | str,
    *,
    seed: int = 42,
    defect_share: float = 0.1,
    periods: Mapping[str, Sequence[str]] | None = None,
    overrides: Mapping[tuple[str, str, str] | str, str | None] | None = None,
    persons: int = 4000,
    workplaces: int = 300,
    civil_servants: int = 0,
    scale: float = 1.0,
    sftp_port: int = 0,
    api_port: int = 0,
    smtp_port: int = 0,
    api_page_size: int | None = None,
    registry_root: Path | str | None = None,
    timeout: float = 90,
    env: Mapping[str, str] | None = None,
) -> SimulatorProcess:
    """Start ``python -m anbar.sim serve`` and wait until it is ready.

    Ports 0 mean "any free port"; the real ones are in ``handle.ports`` and
    ``handle.connections``. ``scale`` multiplies ``persons``, ``workplaces`` and ``civil_servants``.
    The process log goes to ``<state_dir>/sim.log``.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    config = SimConfig(
        seed=seed,
        persons=max(1, round(persons * scale)),
        workplaces=max(1, round(workplaces * scale)),
        civil_servants=round(civil_servants * scale),
        defect_share=defect_share,
        overrides=overrides or {},
        registry_root=Path(registry_root) if registry_root else None,
    )
    periods = dict(DEFAULT_PERIODS if periods is None else periods)
    cmd = serve_command(
        state_dir,
        config,
        periods,
        sftp_port=sftp_port,
        api_port=api_port,
        smtp_port=smtp_port,
        api_page_size=api_page_size,
    )
    ready = state_dir / "ready"
    ready.unlink(missing_ok=True)
    log_path = state_dir / "sim.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            tail = log_path.read_text("utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"anbar.sim exited with {proc.returncode} before ready:\n{tail}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            raise TimeoutError(f"anbar.sim not ready after {timeout} s (log: {log_path})")
        time.sleep(0.05)
    return SimulatorProcess(proc, state_dir, config)


async def serve_forever(sims: Simulators) -> None:
    """Start the servers, wait for SIGTERM/SIGINT, stop them cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sims.start()
    log.info(
        "anbar.sim ready: sftp=%s api=%s smtp=%s state=%s",
        sims.ports["sftp"],
        sims.ports["api"],
        sims.ports["smtp"],
        sims.state_dir,
    )
    await stop.wait()
    log.info("anbar.sim stopping")
    await sims.stop()
