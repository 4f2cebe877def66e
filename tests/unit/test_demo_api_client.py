"""The demo's Airflow API client repeats a read the api-server failed for a moment, and nothing else."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
from typing import ClassVar

import pytest

from anbar.devenv import demo


class _Flaky(http.server.BaseHTTPRequestHandler):
    failures_left = 0
    calls: ClassVar[list[str]] = []

    def _answer(self) -> None:
        type(self).calls.append(self.command)
        if type(self).failures_left:
            type(self).failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        body = json.dumps({"dag_runs": [{"state": "success"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(demo, "RETRY_SECONDS", 0.01)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Flaky.calls = []
    yield httpd
    httpd.shutdown()


def _api(httpd) -> demo.AirflowApi:
    api = demo.AirflowApi(f"http://127.0.0.1:{httpd.server_port}", "admin", "x")
    api._token = "token"
    return api


def test_a_read_the_server_failed_for_a_moment_is_repeated(server):
    _Flaky.failures_left = 2
    assert _api(server).runs("anbar_backup") == [{"state": "success"}]
    assert _Flaky.calls == ["GET", "GET", "GET"]


def test_a_read_that_keeps_failing_raises_and_a_write_is_never_repeated(server):
    _Flaky.failures_left = 3
    with pytest.raises(urllib.error.HTTPError):
        _api(server).runs("anbar_backup")
    _Flaky.failures_left, _Flaky.calls = 1, []
    with pytest.raises(urllib.error.HTTPError):
        _api(server).unpause("anbar_backup")
    assert _Flaky.calls == ["PATCH"]
