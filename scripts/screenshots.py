"""Screenshots of the demo's outputs for the README, taken with headless Chromium.

Run after ``make demo``: serves ``workspace/`` with ``evidently ui`` on 127.0.0.1, opens
the oversight project's dashboard, and renders ``reports/index.html`` at desktop and
phone width; writes ``docs/img/dashboard.png``, ``docs/img/report.png`` and
``docs/img/report-phone.png``. ``--home DIR`` takes them from another project home.

    .venv/bin/python scripts/screenshots.py [--home DIR]
"""

from __future__ import annotations

import argparse
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


def screenshot(url: str, target: Path, height: int, wait_ms: int, width: int = 1400) -> None:
    with tempfile.TemporaryDirectory(prefix="crimecast-chromium-") as profile:
        subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}",
                        f"--screenshot={target}", url],
                       check=True, capture_output=True, timeout=180)
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT,
                        help="project home holding reports/ and workspace/ (default: the repo)")
    home = parser.parse_args().home.resolve()
    images = ROOT / "docs" / "img"
    images.mkdir(parents=True, exist_ok=True)
    report = (home / "reports" / "index.html").as_uri()
    screenshot(report, images / "report.png", 3000, 5000)
    screenshot(report, images / "report-phone.png", 1800, 5000, width=390)

    port = free_port()
    evidently = Path(sys.executable).with_name("evidently")
    server = subprocess.Popen([str(evidently), "ui", "--workspace", str(home / "workspace"),
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
