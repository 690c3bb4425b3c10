"""Screenshots of the demo's outputs for the README, taken with headless Chromium.

Run after ``make demo``: serves ``workspace/`` with ``evidently ui`` on 127.0.0.1, opens
the oversight project's dashboard, and renders ``reports/index.html``; writes
``docs/img/dashboard.png`` and ``docs/img/report.png``.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from crimecast.localserver import free_port, stop_process_tree, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-quic",
                  "--disable-sync", "--hide-scrollbars"]


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

    port = free_port()
    evidently = Path(sys.executable).with_name("evidently")
    server = subprocess.Popen([str(evidently), "ui", "--workspace", str(ROOT / "workspace"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base}/api/projects", server, name="evidently ui")
        projects = httpx.get(f"{base}/api/projects", timeout=10).json()
        project = next(p for p in projects if p["name"] == "crimecast oversight")
        screenshot(f"{base}/projects/{project['id']}", images / "dashboard.png", 2300, 20000)
    finally:
        stop_process_tree(server)


if __name__ == "__main__":
    main()
