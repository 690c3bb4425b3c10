"""The Evidently dashboard and the public report, rendered by headless Chromium.

A monitoring run on the synthetic city fills a fresh Evidently workspace; the real
``evidently ui`` serves it on a free 127.0.0.1 port; Chromium (via selenium) opens the
project dashboard and waits until its panels have plotted data points. Screenshots go to
test-outputs/ (the README's Philadelphia screenshots come from scripts/screenshots.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from crimecast.contracts import AreaGraph, Panel
from crimecast.localserver import free_port, stop_process_tree, wait_until_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = REPO / "test-outputs"
WEEKS = 3


@pytest.fixture(scope="module")
def monitored_home(synthetic_city, tmp_path_factory):
    """A project home with a monitoring run stored in workspace/ and a built report."""
    from monitoring.report import build_report
    from monitoring.run import monitor, write_outputs
    from monitoring.settings import MonitoringSettings
    from monitoring.workspace import OversightWorkspace

    home = tmp_path_factory.mktemp("browser") / "project"
    shutil.copytree(synthetic_city.home, home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRIMECAST_HOME", str(home))
        mp.chdir(home)
        settings = MonitoringSettings.load(reference_weeks=6, html_report=False)
        workspace = OversightWorkspace(settings.path("workspace_dir"), settings.project_name,
                                       settings.path("output_dir") / "workspace_index.json")
        result = monitor(Panel.load(), AreaGraph.load(), settings, num_weeks=WEEKS,
                         source="replay", model="historical_average", workspace=workspace)
        write_outputs(result, settings.path("output_dir"))
        build_report(settings, settings.path("report_dir"))
        yield home, workspace.project_id


@pytest.fixture(scope="module")
def evidently_ui(monitored_home):
    home, project_id = monitored_home
    port = free_port()
    command = [str(Path(sys.executable).with_name("evidently")), "ui", "--workspace",
               str(home / "workspace"), "--host", "127.0.0.1", "--port", str(port)]
    with open(home / "evidently-ui.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=home,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base}/api/projects", process, home / "evidently-ui.log",
                         "evidently ui")
        yield base, project_id
    finally:
        stop_process_tree(process)  # the evidently CLI starts the server as a child


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="crimecast-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic",
                 "--disable-sync", f"--user-data-dir={profile}", "--window-size=1400,2300"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _save(driver, name: str) -> Path:
    OUTPUTS.mkdir(exist_ok=True)
    target = OUTPUTS / name
    driver.save_screenshot(str(target))
    return target


def test_dashboard_renders_panels_with_data(evidently_ui, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, project_id = evidently_ui
    browser.get(f"{base}/projects/{project_id}")

    def plotted(driver) -> bool:
        # Every weekly point of every line is an SVG mark element once data has loaded.
        marks = driver.find_elements(By.CSS_SELECTOR, "svg .MuiMarkElement-root")
        lines = driver.find_elements(By.CSS_SELECTOR, "svg .MuiLineElement-root")
        return len(marks) >= WEEKS * 4 and len(lines) >= 4

    WebDriverWait(browser, 120, poll_frequency=1).until(plotted)
    text = browser.find_element(By.TAG_NAME, "body").text
    for title in ("Share of recent-crime inputs that drifted, by week",
                  "Groups outside the fair band (latest week; 0 = pass)",
                  "Census inputs (static: outside the drift share), by week",
                  "Disparity: hotspot flags per recorded crime vs city, by week",
                  "Patrol units handed out by /allocate: share by group"):
        assert title in text
    # The band's limits and the drift alert threshold are drawn as labelled lines.
    assert "fair band: upper limit" in text and "alert threshold" in text
    time.sleep(1)  # let the line-drawing animation finish before the screenshot
    assert _save(browser, "dashboard.png").stat().st_size > 10_000


def test_report_page_renders_in_chromium(monitored_home, browser, synthetic_city):
    import pandas as pd
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    home, _ = monitored_home
    reports = home / "reports"
    browser.set_window_size(1400, 2300)
    browser.get((reports / "index.html").as_uri())
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Philadelphia" in body  # the city of configs/data.yaml
    target = (synthetic_city.panel.weeks[-1] + pd.Timedelta(weeks=1)).date().isoformat()
    assert f"week of {target}" in body
    # The synthetic city's data end in 2023: the stale-data banner is shown.
    banner = browser.find_element(By.ID, "stale-banner")
    assert banner.is_displayed() and "Out of date" in banner.text

    # The interactive map: drawn by plotly offline, one feature per area.
    def drawn(driver) -> bool:
        return len(driver.find_elements(By.CSS_SELECTOR, "#area-map-plot path.choroplethlocation")
                   ) >= synthetic_city.graph.num_nodes

    WebDriverWait(browser, 60, poll_frequency=0.5).until(drawn)
    features = browser.find_elements(By.CSS_SELECTOR, "#area-map-plot path.choroplethlocation")
    assert len(features) == synthetic_city.graph.num_nodes
    hover = browser.execute_script(
        "return document.getElementById('area-map-plot').data[0].text")
    assert len(hover) == synthetic_city.graph.num_nodes
    counts = [text.rsplit(": ", 1)[-1] for text in hover]
    assert "<5" in counts and all(c == "<5" or int(c) >= 5 for c in counts)
    menu = browser.execute_script(
        "return document.getElementById('area-map-plot').layout.updatemenus[0].buttons"
        ".map(b => b.label)")
    assert any(label.startswith("Recorded crimes") for label in menu)
    assert any(label.startswith("Forecast risk") for label in menu)

    # The fair band is shaded on the disparity chart (a filled rectangle shape).
    shapes = browser.execute_script(
        "return document.getElementById('disparity-chart').layout.shapes")
    assert any(s["type"] == "rect" and s.get("fillcolor") for s in shapes)
    assert browser.find_elements(By.CSS_SELECTOR, "#disparity-chart .shapelayer path")

    # Every table has a CSV link to a file that exists.
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "p.csv a")]
    assert len(links) >= 4  # map layers, accuracy, groups, model card
    for link in links:
        assert (reports / link.split("/reports/", 1)[1]).exists(), link
    _save(browser, "report.png")

    # Glossary links lead to their entry.
    terms = browser.find_elements(By.CSS_SELECTOR, "a.term")
    assert len(terms) >= 10
    mixed = next(a for a in terms if a.get_attribute("href").endswith("#mixed"))
    browser.get(mixed.get_attribute("href"))
    entry = browser.find_element(By.ID, "mixed")
    assert entry.text == "mixed"

    # Phone width: the page does not scroll sideways.
    browser.set_window_size(390, 844)
    browser.get((reports / "index.html").as_uri())
    WebDriverWait(browser, 60, poll_frequency=0.5).until(drawn)
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    _save(browser, "report-phone.png")
    browser.set_window_size(1400, 2300)
