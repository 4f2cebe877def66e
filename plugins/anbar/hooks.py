"""One thin hook per protocol, over the Airflow provider hooks.

They speak exchange standard v1 and nothing else: where a period's delivery lives,
how to read its manifest, how to stream its files. Host keys are pinned in the
SFTP connection (``host_key`` extra); these hooks refuse to run without one.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import BinaryIO

from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.sftp.hooks.sftp import SFTPHook

from anbar.exchange import MANIFEST_NAME, DeliveryRejected

CHUNK = 1 << 20


class SupplierSftpHook:
    """An organisation's SFTP outbox: ``<outbox>/<dataset>/<period>/``."""

    def __init__(self, conn_id: str, outbox: str):
        self.conn_id = conn_id
        self.outbox = outbox.strip("/")
        self._hook: SFTPHook | None = None

    @property
    def hook(self) -> SFTPHook:
        if self._hook is None:
            hook = SFTPHook(ssh_conn_id=self.conn_id)
            if hook.no_host_key_check or hook.host_key is None:
                raise RuntimeError(
                    f"connection {self.conn_id!r} does not pin the supplier's host key; "
                    "set the host_key extra (anbar never trusts a host key on first use)"
                )
            self._hook = hook
        return self._hook

    def period_dir(self, dataset: str, period: str) -> str:
        return posixpath.join(self.outbox, dataset, period)

    def list_period(self, dataset: str, period: str) -> list[str] | None:
        """File names in the period directory, or None if it does not exist."""
        path = self.period_dir(dataset, period)
        if not self.hook.path_exists(path):
            return None
        return sorted(self.hook.list_directory(path) or [])

    def read_manifest(self, dataset: str, period: str) -> bytes | None:
        path = posixpath.join(self.period_dir(dataset, period), MANIFEST_NAME)
        if not self.hook.path_exists(path):
            return None
        with self.hook.get_managed_conn() as sftp, sftp.open(path, "rb") as fh:
            return fh.read(2_000_000)

    def stream_file(self, dataset: str, period: str, name: str, out: BinaryIO, max_bytes: int) -> None:
        """Copy a delivered file to ``out``; refuse more than ``max_bytes`` (the manifest's size + slack)."""
        if "/" in name or name in ("", ".", ".."):
            raise DeliveryRejected("unsafe_file_name", f"file name {name!r} is not allowed")
        path = posixpath.join(self.period_dir(dataset, period), name)
        with self.hook.get_managed_conn() as sftp:
            try:
                fh = sftp.open(path, "rb")
            except FileNotFoundError:
                raise DeliveryRejected(
                    "missing_file", f"{name} is listed in the manifest but not delivered", file=name
                ) from None
            with fh:
                fh.prefetch()
                copied = 0
                while True:
                    chunk = fh.read(CHUNK)
                    if not chunk:
                        break
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise DeliveryRejected(
                            "size_mismatch", f"{name} is larger than the manifest declares", file=name
                        )
                    out.write(chunk)

    def close(self) -> None:
        if self._hook is not None:
            self._hook.close_conn()


class SupplierApiHook:
    """An organisation's extract API (bearer token in the connection's password)."""

    def __init__(self, conn_id: str):
        self.conn_id = conn_id
        self._hook = HttpHook(method="GET", http_conn_id=conn_id)
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            conn = self._hook.get_connection(self.conn_id)
            token = conn.password or (conn.extra_dejson or {}).get("token")
            if not token:
                raise RuntimeError(f"connection {self.conn_id!r} has no bearer token (password)")
            self._token = token
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    def _get(self, endpoint: str, params: dict | None = None):
        response = self._hook.run(
            endpoint, data=params, headers=self._headers(), extra_options={"check_response": False, "timeout": 60}
        )
        if response.status_code in (401, 403):
            raise PermissionError(f"{self.conn_id}: the supplier API refused our token ({response.status_code})")
        return response

    def read_manifest(self, dataset: str, period: str) -> bytes | None:
        response = self._get(f"/v1/extracts/{dataset}/{period}/manifest")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.content

    def iter_records(self, dataset: str, period: str) -> Iterator[dict]:
        cursor: str | None = None
        page = 0
        while True:
            params = {"cursor": cursor} if cursor else None
            response = self._get(f"/v1/extracts/{dataset}/{period}", params)
            response.raise_for_status()
            try:
                body = response.json()
                records, cursor = body["records"], body.get("next_cursor")
            except (ValueError, KeyError, TypeError) as exc:
                raise DeliveryRejected(
                    "malformed_records", f"page {page + 1} is not a valid records page: {exc}"
                ) from None
            if not isinstance(records, list):
                raise DeliveryRejected("malformed_records", f"page {page + 1}: 'records' is not a list")
            yield from records
            page += 1
            if not cursor:
                return

    def iter_jsonl(self, dataset: str, period: str) -> Iterator[bytes]:
        """Records as JSON Lines, the form in which API deliveries are landed."""
        for record in self.iter_records(dataset, period):
            yield (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    def close(self) -> None:
        pass
