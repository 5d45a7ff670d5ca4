"""The README's first command ends in ``scripts/lab.sh``: it must start JupyterLab on the quickstart
(as root too, as on CI machines and containers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from .test_dashboard_e2e import ROOT, _free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_lab_script_serves_the_quickstart(tmp_path: Path) -> None:
    port, token = _free_port(), "autoglm-test"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log_path = tmp_path / "lab.log"
    log = log_path.open("w")  # a file, not a pipe: an unread pipe fills up and blocks the server
    proc = subprocess.Popen([str(ROOT / "scripts" / "lab.sh"), "--no-browser", f"--port={port}",
                             f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # given a notebook, Jupyter Server serves that notebook's folder (notebooks/) as its root
        url = f"http://127.0.0.1:{port}/api/contents/01_quickstart.ipynb?content=0&token={token}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log_path.read_text()[-2000:]
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    model = json.load(resp)
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-2000:]
                time.sleep(0.5)
        assert model["name"] == "01_quickstart.ipynb" and model["type"] == "notebook"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
