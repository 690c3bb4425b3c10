"""The cycle's bookkeeping with real subprocesses and a real file lock (fast): steps after
repro are skipped once done for a pipeline state, a failed step is named and resumed,
a changed dvc.lock redoes them, and the lock refuses a second holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crimecast.lifecycle.cycle import (
    Command,
    CycleFailed,
    CycleLocked,
    CycleSettings,
    Step,
    cycle_lock,
    run_cycle,
)


def _py(code: str) -> Command:
    return Command([sys.executable, "-c", code])


def _steps(marker: Path, fail: str | None = None) -> list[Step]:
    def touch(name: str) -> Command:
        code = (f"import sys; open({str(marker)!r}, 'a').write('{name}\\n'); "
                f"sys.exit({3 if name == fail else 0})")
        return _py(code)

    return [Step("refresh", function=lambda: "nothing to fetch"),
            Step("repro", commands=[touch("repro")]),
            Step("reload", function=lambda: "reloaded"),
            Step("monitor", commands=[touch("monitor"),
                                      Command([sys.executable, "-c", "import sys; sys.exit(1)"],
                                              {1: "alerts raised"})]),
            Step("report", commands=[touch("report")])]


def _ran(marker: Path) -> list[str]:
    lines = marker.read_text().split() if marker.exists() else []
    marker.unlink(missing_ok=True)
    return lines


def test_rerun_skips_done_steps_until_dvc_lock_changes(tmp_project: Path) -> None:
    settings, marker, out = CycleSettings.load(), tmp_project / "ran.txt", []
    (tmp_project / "dvc.lock").write_text("schema: '2.0'\n")
    first = run_cycle(_steps(marker), settings, out.append)
    assert list(first.steps.values()) == ["ran"] * 5
    assert _ran(marker) == ["repro", "monitor", "report"]
    assert "    alerts raised" in out  # an allowed exit code is a note, not a failure

    second = run_cycle(_steps(marker), settings, out.append)
    assert second.steps == {"refresh": "ran", "repro": "ran", "reload": "skipped",
                            "monitor": "skipped", "report": "skipped"}
    assert _ran(marker) == ["repro"]

    (tmp_project / "dvc.lock").write_text("schema: '2.0'\nstages: {train: {}}\n")
    third = run_cycle(_steps(marker), settings, out.append)
    assert list(third.steps.values()) == ["ran"] * 5


def test_failed_step_is_named_and_resumed(tmp_project: Path) -> None:
    settings, marker = CycleSettings.load(), tmp_project / "ran.txt"
    with pytest.raises(CycleFailed, match="cycle failed at step 'monitor' \\(exit 3\\)") as exc:
        run_cycle(_steps(marker, fail="monitor"), settings, lambda line: None)
    assert exc.value.step == "monitor" and exc.value.returncode == 3
    assert _ran(marker) == ["repro", "monitor"]
    resumed = run_cycle(_steps(marker), settings, lambda line: None)
    assert resumed.steps["reload"] == "skipped" and resumed.steps["monitor"] == "ran"
    assert _ran(marker) == ["repro", "monitor", "report"]


def test_dry_run_runs_nothing(tmp_project: Path) -> None:
    marker, out = tmp_project / "ran.txt", []
    plan = run_cycle(_steps(marker), CycleSettings.load(), out.append, dry_run=True)
    assert set(plan.steps.values()) == {"would run"}
    assert not marker.exists() and not (tmp_project / "state" / "cycle.json").exists()


def test_lock_refuses_a_second_holder_and_is_freed_when_the_first_dies(tmp_project: Path
                                                                       ) -> None:
    lock = tmp_project / "state" / "cycle.lock"
    hold = ("import sys, time; from pathlib import Path; "
            "from crimecast.lifecycle.cycle import cycle_lock; c = cycle_lock(Path(sys.argv[1])); "
            "c.__enter__(); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (pytest.raises(CycleLocked, match=f"another cycle is running \\(pid {holder.pid}"),
              cycle_lock(lock)):
            pass
    finally:
        holder.kill()
        holder.wait()
    with cycle_lock(lock):
        pass


def test_reload_step_posts_with_the_admin_key_and_names_a_missing_key(monkeypatch) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from crimecast.cli.cycle import _reload
    from crimecast.errors import CrimecastError

    seen: list[tuple[str, str | None]] = []

    class Reload(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append((self.path, self.headers.get("X-API-Key")))
            body = json.dumps({"previous_version": "3", "version": "4", "changed": True})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Reload)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        monkeypatch.setenv("CYCLE_TEST_KEY", "secret-admin")
        assert _reload(url, "CYCLE_TEST_KEY", 5) == "service now serves version 4 (was 3)"
        assert seen == [("/reload", "secret-admin")]
        monkeypatch.delenv("CYCLE_TEST_KEY")
        with pytest.raises(CrimecastError, match=r"admin API key in \$CYCLE_TEST_KEY"):
            _reload(url, "CYCLE_TEST_KEY", 5)
    finally:
        server.shutdown()
    assert "switches to the new @champion on its own" in _reload(None, "CYCLE_TEST_KEY", 5)
