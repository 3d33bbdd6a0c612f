"""Load test of the served app: real Shiny websocket sessions on loopback. Measures, never asserts.

``python -m tests.bench.serving [--sessions 20] [--changes 20] [--lone-changes 40]
[--think-s 0.5] [--seed 0]`` starts the real app (``uvicorn app.app:app``, one process, the
shipped ``models/``) on a free loopback port with a temporary SQLite database holding one
clinician per session, then:

1. **Captures what a browser sends.** One headless Chromium session (Debian's chromium through
   Playwright, as the e2e tests) logs in and records the ``init`` message Shiny's JavaScript
   sends: every input's initial value and which outputs are visible. It is closed before any
   timing starts.
2. **A lone session** (:func:`run_session`): logs in over HTTP, opens the websocket with its
   cookie and the page's ``Origin``, replays the ``init``, echoes the values the server sets on
   inputs (as the browser's input bindings do: the shown cases, the slider), opens the Outcome
   space tab (``nav`` and the outputs' hidden flags, as the browser sends them) and waits for the
   outcome-space figure: that is *setup*. Then it moves the selected dose ``--lone-changes``
   times to another grid dose, waiting ``--think-s`` (± half) between changes, and times each
   change until the plot shows the new dose: a ``values`` message carrying the whole
   ``outcome-plot`` figure with the new "selected" marker, or the ``artds-selected-dose``
   message that moves the marker on the client (:mod:`app.panels.outcome_space`). Only an
   update naming the dose sent counts.
3. **``--sessions`` concurrent sessions** (one clinician each, all started at once) do the same
   with ``--changes`` dose changes each, all on the example patient a session opens with; then
   again, each session first loading another example patient ("Load example": 5 distinct sets
   of shown cases, so recommendations and figures are computed, not only shared).

Before these, one session times the *first* setup after start-up, while the worker processes
may still be loading the models.

Prints one JSON line per measure (:func:`tests.bench.timing.emit`): setup and dose → plot
latencies (median, p95), how many sessions finished setup, the bytes each dose change brought
(the figure or the small message), and the CPU the server used (its process and its worker
processes; 2.0 = both cores busy; machine-wide load from other processes is not excluded, so
run it on a quiet machine). ``$ARTDS_BENCH_APP_LOG`` names a file to keep the app's log in. A
session that does not finish setup within
:data:`SETUP_LIMIT_S` or a change not answered within :data:`CHANGE_LIMIT_S` is counted, never
waited for forever.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.timing import percentile
from tests.served import ShinySession, log_in, served_app

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench-pass-1234567890"
"""Password of every bench user (a throwaway database)."""
SETUP_LIMIT_S = 120.0
"""A session that has not shown the outcome-space figure after this long did not finish setup."""
CHANGE_LIMIT_S = 30.0
"""A dose change not shown after this long counts as lost (and ends that session's run)."""
PLOT_ID = "outcome-plot"
DOSE_ID = "outcome-dose"
SELECTED_DOSE_MESSAGE = "artds-selected-dose"
"""Custom message moving the selected-dose marker on the client (app/www/plots.js)."""


def _usernames(n: int) -> list[str]:
    return [f"bench-clinician-{i:02d}" for i in range(n)]


@contextlib.contextmanager
def bench_app(n_users: int) -> Iterator[tuple[str, int]]:
    """Start the app (one uvicorn process, :func:`tests.served.served_app`) with a fresh
    database of ``n_users`` clinicians; yield (its URL, its process id). The app's log is copied
    to ``$ARTDS_BENCH_APP_LOG`` when set."""
    from engine.platform.accounts import create_user
    from engine.platform.store import Store

    with tempfile.TemporaryDirectory(prefix="artds-bench-") as tmp:
        folder = Path(tmp)
        url_db = f"sqlite:///{folder / 'artds.sqlite3'}"
        store = Store(url_db)
        try:
            store.upgrade()
            for name in _usernames(n_users):
                create_user(store, name, PASSWORD, "clinician", created_by="cli")
        finally:
            store.dispose()
        try:
            with served_app(url_db, folder) as app:
                yield app.url, app.process.pid
        finally:
            kept = os.environ.get("ARTDS_BENCH_APP_LOG")
            if kept and (folder / "app.log").is_file():
                shutil.copyfile(folder / "app.log", kept)


def capture_init(url: str, username: str) -> dict[str, Any]:
    """The ``init`` message's data Chromium's Shiny client sends for a fresh clinician page."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("Debian's chromium is needed to capture the browser's init message")
    sent: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.on("websocket", lambda ws: ws.on(
                "framesent", lambda frame: sent.append(frame) if isinstance(frame, str) else None))
            page.goto(f"{url}/login")
            page.locator("#username").fill(username)
            page.locator("#password").fill(PASSWORD)
            page.locator("#login-form button[type=submit]").click()
            page.wait_for_function("() => window.Shiny && window.Shiny.initializedPromise")
            page.wait_for_timeout(500)
        finally:
            browser.close()
    for frame in sent:
        message = json.loads(frame)
        if message.get("method") == "init":
            return message["data"]
    raise RuntimeError("Chromium sent no init message")


def outcome_tab(init: dict[str, Any]) -> dict[str, Any]:
    """What the browser sends on opening the Outcome space tab: ``nav`` and the hidden flags
    (the Data input panel's outputs hidden, the Outcome space panel's shown)."""
    flags = {}
    for key in init:
        found = re.fullmatch(r"\.clientdata_output_(.+)_hidden", key)
        if found is None:
            continue
        name = found.group(1)
        if name.startswith("data-"):
            flags[key] = True
        elif name.startswith("outcome-"):
            flags[key] = False
    return {"nav": "outcome", **flags}


def _labels_in_figure(figure: Any) -> set[str]:
    """Case labels of the curves of a figure payload (their legend names)."""
    names = [str(t.get("name", "")) for t in figure.get("data", [])] \
        if isinstance(figure, dict) else []
    return {n.split(" (dose")[0] for n in names if " (dose" in n}


def _selected_dose_in_figure(figure: Any) -> float | None:
    """The dose of the "selected" marker of the first case in a figure payload."""
    if not isinstance(figure, dict):
        return None
    for trace in figure.get("data", []):
        found = re.search(r": selected ([0-9.]+) Gy/fx", str(trace.get("name", "")))
        if found:
            return float(found.group(1))
    return None


@dataclass
class SessionResult:
    """What one session measured."""

    setup_s: float | None = None
    """Seconds from opening the websocket to the outcome-space figure (None: not finished)."""
    change_s: list[float] = field(default_factory=list)
    """Seconds from each dose change sent to the plot showing it."""
    change_bytes: list[int] = field(default_factory=list)
    """Bytes of the message that showed each change."""
    lost: int = 0
    """Dose changes not shown within CHANGE_LIMIT_S."""
    error: str | None = None


class PlotWatcher:
    """Watches one session's messages (:attr:`tests.served.ShinySession.on_message`) for the
    outcome-space plot: when it first shows (with the wanted case), every selected dose it shows
    (a figure's "selected" marker, or the small message that moves the marker on the client),
    and the dose slider's grid."""

    def __init__(self, wanted_case: str | None = None) -> None:
        self.wanted_case = wanted_case
        """Setup ends with a figure showing this case (None: any figure)."""
        self.figure_seen = asyncio.Event()
        self.shown: list[tuple[float, float, int]] = []
        """(arrival time, selected dose shown, message characters) of every plot update."""
        self.updated = asyncio.Event()
        self.grid: tuple[float, float, float] | None = None
        """(min, max, step) of the dose slider, from the server's slider update."""

    def __call__(self, message: dict[str, Any], size: int, arrived: float) -> None:
        for item in message.get("inputMessages") or []:
            sent = item.get("message", {})
            if item.get("id") == DOSE_ID and isinstance(sent, dict) and "min" in sent:
                self.grid = (float(sent["min"]), float(sent["max"]), float(sent["step"]))
        values = message.get("values") or {}
        if values.get(PLOT_ID):
            if self.wanted_case is None or self.wanted_case in _labels_in_figure(
                    values[PLOT_ID]):
                self.figure_seen.set()
            dose = _selected_dose_in_figure(values[PLOT_ID])
            if dose is not None:
                self._shown(arrived, dose, size)
        custom = (message.get("custom") or {}).get(SELECTED_DOSE_MESSAGE)
        if custom and custom.get("id") == PLOT_ID:
            self._shown(arrived, float(custom["dose_gy"]), size)

    def _shown(self, now: float, dose: float, size: int) -> None:
        self.shown.append((now, dose, size))
        self.updated.set()

    async def wait_for_dose(self, dose: float, since: int, limit_s: float) -> tuple[float, int]:
        """(arrival time, size) of the first plot update after ``since`` showing ``dose``."""
        deadline = time.perf_counter() + limit_s
        while True:
            for arrived, shown, size in self.shown[since:]:
                if abs(shown - dose) < 1e-6:
                    return arrived, size
            self.updated.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait_for(self.updated.wait(), remaining)


def _grid(lo: float, hi: float, step: float) -> list[float]:
    n = round((hi - lo) / step)
    return [round(lo + k * step, 6) for k in range(n + 1)]


async def run_session(url: str, cookie: str, init: dict[str, Any], n_changes: int,
                      think_s: float, rng: random.Random, example: str | None = None
                      ) -> SessionResult:
    """One clinician: setup, then ``n_changes`` timed dose changes (see the module).

    ``example``: the id of an example patient the session loads ("Load example") before
    opening the Outcome space; setup then ends with a figure showing it."""
    result = SessionResult()
    watcher = PlotWatcher(example)
    session = ShinySession(url, cookie, on_message=watcher)
    start = time.perf_counter()
    try:
        try:
            await session.open(dict(init), open_timeout=SETUP_LIMIT_S)
            if example is not None:
                await session.set(**{"data-example": example})
                await session.click("data-load_example")
            await session.set(**outcome_tab(init))
            await asyncio.wait_for(watcher.figure_seen.wait(),
                                   SETUP_LIMIT_S - (time.perf_counter() - start))
            result.setup_s = time.perf_counter() - start
            grid = _grid(*(watcher.grid or (1.5, 4.0, 0.1)))
            for _ in range(n_changes):
                await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
                current = session.value(DOSE_ID)
                dose = rng.choice([d for d in grid if current is None
                                   or abs(d - float(current)) > 1e-6])
                since = len(watcher.shown)
                sent = time.perf_counter()
                await session.set(**{DOSE_ID: dose})
                try:
                    arrived, size = await watcher.wait_for_dose(dose, since, CHANGE_LIMIT_S)
                except TimeoutError:
                    result.lost += 1
                    break
                result.change_s.append(arrived - sent)
                result.change_bytes.append(size)
        finally:
            await session.close()
    except TimeoutError:
        result.error = "setup timed out"
    except Exception as err:  # counted and printed, the other sessions go on
        result.error = f"{type(err).__name__}: {err}"
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its child processes (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == pid:
                        pids.append(int(entry))
    for p in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def run_load(url: str, cookies: list[str], init: dict[str, Any], n_changes: int,
                   think_s: float, seed: int, examples: list[str] | None = None
                   ) -> list[SessionResult]:
    """All sessions at once (session k loads ``examples[k % len(examples)]`` first when
    given); their results in order."""
    return list(await asyncio.gather(*[
        run_session(url, cookie, init, n_changes, think_s, random.Random(seed + k),
                    examples[k % len(examples)] if examples else None)
        for k, cookie in enumerate(cookies)]))


def _latency(name: str, samples_ms: list[float], **extra: object) -> dict[str, Any]:
    """``{"bench", "n", "median_ms", "p95_ms", **extra}`` (as :func:`tests.bench.timing.emit`
    prints)."""
    return {"bench": name, "n": len(samples_ms),
            "median_ms": round(statistics.median(samples_ms), 3),
            "p95_ms": round(percentile(samples_ms, 0.95), 3), **extra}


def report(name: str, results: list[SessionResult], wall_s: float, cpu_s: float
           ) -> list[dict[str, Any]]:
    """Print the measures of one run (JSON lines) and return them."""
    setups = [r.setup_s * 1000.0 for r in results if r.setup_s is not None]
    changes = [s * 1000.0 for r in results for s in r.change_s]
    sizes = [b for r in results for b in r.change_bytes]
    errors = sorted({r.error for r in results if r.error})
    common = {"sessions": len(results), "finished_setup": len(setups)}
    records = []
    if setups:
        records.append(_latency(f"serving.{name}.setup", setups, **common))
    if changes:
        records.append(_latency(f"serving.{name}.dose_to_plot", changes, **common,
                                lost=sum(r.lost for r in results),
                                bytes_per_change_median=sorted(sizes)[len(sizes) // 2]))
    records.append({"bench": f"serving.{name}.server_cpu", **common,
                    "wall_s": round(wall_s, 1), "server_cpu_s": round(cpu_s, 1),
                    "cores_busy": round(cpu_s / wall_s, 2) if wall_s else None,
                    "errors": errors})
    for record in records:
        print(json.dumps(record))
    return records


def save(path: Path, label: str, records: list[dict[str, Any]], load_average: list[float]
         ) -> None:
    """Keep ``records`` under ``label`` in the JSON file ``path`` (other labels kept), with the
    commit measured and the machine's load average before and after (other processes' work)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved[label] = {"commit": commit, "cores": os.cpu_count(),
                    "load_average_1min": [round(x, 2) for x in load_average],
                    "results": {r["bench"]: r for r in records}}
    path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")


DOCS_JSON = ROOT / "docs" / "bench" / "serving.json"
"""The saved runs ``docs/clinic.md`` quotes (:func:`docs_table`)."""


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def docs_table(saved: dict[str, Any]) -> str:
    """The Markdown table of ``docs/clinic.md`` comparing the saved runs (before, after)."""
    labels = [k for k in ("before", "after") if k in saved]
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = []
    for run, title in (("lone_session", "1 session"),
                       ("20_sessions", "20 sessions, same patient"),
                       ("20_sessions_loading_examples", "20 sessions, loading examples")):
        def latency(kind: str, run: str = run) -> Callable[[dict[str, Any]], str]:
            return lambda r: (f"{_ms(r[f'serving.{run}.{kind}']['median_ms'])} / "
                              f"{_ms(r[f'serving.{run}.{kind}']['p95_ms'])}")
        rows.append((f"{title}: dose → plot updated, median / p95", latency("dose_to_plot")))
        rows.append((f"{title}: bytes per dose change", lambda r, run=run: (
            f"{r[f'serving.{run}.dose_to_plot']['bytes_per_change_median'] / 1000:.1f} kB")))
        rows.append((f"{title}: setup, median / p95", latency("setup")))
        rows.append((f"{title}: finished setup", lambda r, run=run: (
            f"{r[f'serving.{run}.setup']['finished_setup']} of "
            f"{r[f'serving.{run}.setup']['sessions']}")))
    header = ["measure", *(f"{k} ({saved[k]['commit']})" for k in labels)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, cell in rows:
        lines.append("| " + " | ".join([name, *(cell(saved[k]["results"]) for k in labels)])
                     + " |")
    lines.append("| machine load average (1 min, start → end) | " + " | ".join(
        " → ".join(f"{x:g}" for x in saved[k]["load_average_1min"]) for k in labels) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--changes", type=int, default=20,
                        help="dose changes per concurrent session")
    parser.add_argument("--lone-changes", type=int, default=40,
                        help="dose changes of the lone session")
    parser.add_argument("--think-s", type=float, default=0.5,
                        help="mean pause between two dose changes of a session (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None,
                        help="also keep the results in this JSON file (e.g. docs/bench/"
                        "serving.json, which docs/clinic.md quotes)")
    parser.add_argument("--label", default="after",
                        help="name of the results in --save (default after)")
    parser.add_argument("--docs", action="store_true",
                        help=f"only print the table of {DOCS_JSON.relative_to(ROOT)} for "
                        "docs/clinic.md")
    args = parser.parse_args(argv)
    if args.docs:
        print(docs_table(json.loads(DOCS_JSON.read_text())), end="")
        return
    records: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    n_users = max(args.sessions, 1) + 1
    with bench_app(n_users) as (url, pid):
        users = _usernames(n_users)
        init = capture_init(url, users[-1])
        lone_cookie = log_in(url, users[-1], PASSWORD)

        def run(name: str, cookies: list[str], changes: int, seed: int,
                examples: list[str] | None = None) -> None:
            cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
            results = asyncio.run(run_load(url, cookies, init, changes, args.think_s, seed,
                                           examples))
            records.extend(report(name, results, time.perf_counter() - t0,
                                  _cpu_seconds(pid) - cpu0))

        # The first session after start-up: the worker processes may still be loading models.
        run("first_session_after_start", [lone_cookie], 1, args.seed)
        run("lone_session", [lone_cookie], args.lone_changes, args.seed)
        cookies = [log_in(url, u, PASSWORD) for u in users[:args.sessions]]
        # Everyone on the example patient a session opens with (computed once, then shared).
        run(f"{args.sessions}_sessions", cookies, args.changes, args.seed + 1000)
        # Each session loads one of the other example patients first (new recommendations
        # and figures for each distinct set of shown cases).
        examples = [f"EX-NSCLC-{k:02d}" for k in range(2, 7)]
        run(f"{args.sessions}_sessions_loading_examples", cookies, args.changes,
            args.seed + 2000, examples)
    if args.save is not None:
        save(args.save, args.label, records, [load_before, os.getloadavg()[0]])


if __name__ == "__main__":
    main()
