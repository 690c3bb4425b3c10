"""Screenshots of the demo's outputs for the README, taken with headless Chromium.

Run after ``make demo``: serves ``workspace/`` with ``evidently ui`` on 127.0.0.1, opens
the oversight project's dashboard, and renders ``reports/index.html``; writes
``docs/img/dashboard.png`` and ``docs/img/report.png``.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-quic",
                  "--disable-sync", "--hide-scrollbars"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def screenshot(url: str, target: Path, height: int, wait_ms: int) -> None:
    with tempfile.TemporaryDirectory(prefix="crimecast-chromium-") as profile:
        subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--window-size=1400,{height}", f"--virtual-time-budget={wait_ms}",
                        f"--screenshot={target}", url],
                       check=True, capture_output=True, timeout=180)
    print(f"wrote {target}")


def main() -> None:
    images = ROOT / "docs" / "img"
    images.mkdir(parents=True, exist_ok=True)
    screenshot((ROOT / "reports" / "index.html").as_uri(), images / "report.png", 3000, 3000)

    port = _free_port()
    evidently = Path(sys.executable).with_name("evidently")
    server = subprocess.Popen([str(evidently), "ui", "--workspace", str(ROOT / "workspace"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                projects = httpx.get(f"{base}/api/projects", timeout=2).json()
                break
            except (httpx.HTTPError, json.JSONDecodeError):
                time.sleep(0.5)
        else:
            raise SystemExit("evidently ui did not start")
        project = next(p for p in projects if p["name"] == "crimecast oversight")
        screenshot(f"{base}/projects/{project['id']}", images / "dashboard.png", 2300, 20000)
    finally:
        os.killpg(server.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
