"""Simulated supplier systems for the demo and the tests.

One synthetic population (``Population``), seen through each supplier's
monthly extracts (``extract_rows``), delivered over the real protocols on
127.0.0.1: SFTP outboxes in the layout of exchange standard v1
(``write_sftp_delivery``, ``publish_sftp_periods``, ``SftpServer``), an HTTP
extract API (``create_api_app``, ``ApiServer``) and an SMTP sink
(``SmtpSink``). A configurable share of deliveries is defective
(``SimConfig.defect_for`` / ``expected_defect``).

Run everything with ``python -m anbar.sim serve`` or ``start_simulators(...)``.

Names are imported lazily so that ``import anbar.sim`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Population": "anbar.sim.population",
    "Person": "anbar.sim.population",
    "Workplace": "anbar.sim.population",
    "Employment": "anbar.sim.population",
    "Training": "anbar.sim.population",
    "Course": "anbar.sim.population",
    "Pension": "anbar.sim.population",
    "Support": "anbar.sim.population",
    "stable_random": "anbar.sim.population",
    "stable_unit": "anbar.sim.population",
    "extract_rows": "anbar.sim.extracts",
    "format_date": "anbar.sim.extracts",
    "sftp_variant": "anbar.sim.extracts",
    "represent": "anbar.sim.extracts",
    "Variant": "anbar.sim.extracts",
    "VARIANTS": "anbar.sim.extracts",
    "DEFECTS": "anbar.sim.defects",
    "SFTP_DEFECTS": "anbar.sim.defects",
    "API_DEFECTS": "anbar.sim.defects",
    "ROW_DEFECTS": "anbar.sim.defects",
    "VALUE_DEFECTS": "anbar.sim.defects",
    "DEFECT_PRINCIPLE": "anbar.sim.defects",
    "HOSTILE_FILE_NAME": "anbar.sim.defects",
    "SimConfig": "anbar.sim.defects",
    "expected_defect": "anbar.sim.defects",
    "applicable_defects": "anbar.sim.defects",
    "apply_row_defect": "anbar.sim.defects",
    "missing_column_for": "anbar.sim.defects",
    "write_sftp_delivery": "anbar.sim.delivery",
    "publish_sftp_periods": "anbar.sim.delivery",
    "sftp_delivery_rows": "anbar.sim.delivery",
    "delivery_dir": "anbar.sim.delivery",
    "Delivery": "anbar.sim.delivery",
    "MANIFEST": "anbar.sim.delivery",
    "ensure_keypair": "anbar.sim.keys",
    "KeyPair": "anbar.sim.keys",
    "SftpServer": "anbar.sim.sftp_server",
    "create_api_app": "anbar.sim.api_server",
    "api_delivery_rows": "anbar.sim.api_server",
    "ApiServer": "anbar.sim.api_server",
    "SmtpSink": "anbar.sim.smtp_sink",
    "Simulators": "anbar.sim.serve",
    "SimulatorHandle": "anbar.sim.serve",
    "SimulatorProcess": "anbar.sim.serve",
    "InProcessSimulators": "anbar.sim.serve",
    "start_simulators": "anbar.sim.serve",
    "run_simulators_in_thread": "anbar.sim.serve",
    "airflow_env": "anbar.sim.serve",
    "DEFAULT_PERIODS": "anbar.sim.serve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'anbar.sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
