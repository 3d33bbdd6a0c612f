"""Event-loop benchmark of a served app with 10,000 stored patients (#14 point 2). Measures,
never asserts.

``python -m tests.bench.event_loop [--stored N] [--rows N] [--repeats N]`` builds a temporary
SQLite database holding ``--stored`` NSCLC patients (default 10,000), serves the app with uvicorn
on a loopback port (:mod:`tests.served`) and, with real websocket sessions as a
browser opens them, prints one JSON line per measurement:

* ``event_loop.session_start``: log-in cookie in hand → the page (``GET /``) and the Data input
  panel ready over the websocket (notes, saved-patient list and the stored count received);
* ``event_loop.save_notes``: "Save notes" pressed → the new note version shown;
* ``event_loop.healthz_idle``: the same polling with nothing else running (this machine's
  floor: on a shared machine other processes' load shows here too);
* ``event_loop.healthz_during_upload``: ``GET /healthz`` every 20 ms (from a process of its own)
  while another session uploads a ``--rows``-row file (default 10,000 new patients) until its
  success line arrives, over ``--uploads`` uploads (default 3), with their median duration;
* ``event_loop.save_notes_during_upload``: "Save notes" pressed again and again in a third
  session while one more such upload is validated and saved.

``--app-root PATH`` serves another checkout of artds (e.g. the previous commit, for a
comparison) with this one's database and client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.timing import percentile
from tests.served import ShinySession, http_get, log_in, page_inputs, served_app

USER = ("bench-physicist", "bench-password-1234")


def _seed(url: str, n_stored: int) -> None:
    """A migrated database with the bench user and ``n_stored`` NSCLC patients."""
    from engine.arclids.cohort import generate_cohort
    from engine.core.protocols import load_protocol
    from engine.core.schema import validate_dataframe
    from engine.platform.accounts import create_user
    from engine.platform.inputs import case_records
    from engine.platform.store import Store

    store = Store(url)
    store.upgrade()
    create_user(store, *USER, "physicist", created_by="cli")
    protocol = load_protocol("nsclc")
    table = generate_cohort("nsclc", seed=11, n_patients=n_stored).table.drop(
        columns=["complete"])
    cases = validate_dataframe(table.astype(object).where(table.notna(), None), protocol)
    store.save_cases("nsclc", case_records(cases, protocol), source="upload", username=USER[0])
    store.dispose()


def _upload_file(n_rows: int, prefix: str = "UP") -> bytes:
    """A valid NSCLC cases file of ``n_rows`` patients not yet stored (ids ``<prefix>-…``)."""
    from engine.arclids.cohort import generate_cohort, write_cases_csv
    from engine.core.protocols import load_protocol

    table = generate_cohort("nsclc", seed=12, n_patients=n_rows).table.drop(columns=["complete"])
    table["patient_id"] = [f"{prefix}-{k:05d}" for k in range(len(table))]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_cases_csv(table, load_protocol("nsclc"), Path(tmp) / "cases.csv")
        return path.read_bytes()


def _data_panel(output: str) -> bool:
    """The outputs a browser shows at start: the Data input panel and the sidebar."""
    return output.startswith(("data-", "model-"))


def _saved_list_ready(s: ShinySession) -> bool:
    return any(m.get("id") == "data-saved" for m in s.input_messages)


def _notes_ready(s: ShinySession) -> bool:
    return "note_" in s.html("data-notes_ui") and not s.busy


async def _open(url: str, cookie: str) -> tuple[ShinySession, float, float]:
    """A new session; (it, ms for the page, ms from the page to the Data input panel ready)."""
    start = time.perf_counter()
    status, page = await asyncio.to_thread(http_get, f"{url}/", cookie)
    assert status == 200, status
    paged = time.perf_counter()
    session = ShinySession(url, cookie)
    await session.open(page_inputs(page.decode(), _data_panel))
    await session.wait_for(lambda s: _saved_list_ready(s) and _notes_ready(s))
    done = time.perf_counter()
    return session, (paged - start) * 1000.0, (done - paged) * 1000.0


def _note_input(session: ShinySession) -> str:
    html = session.html("data-notes_ui")
    start = html.index('<textarea id="') + len('<textarea id="')
    return html[start:html.index('"', start)]


async def _save_note(session: ShinySession, text: str) -> float:
    """Type ``text`` into the first shown case's note and press "Save notes"; ms until the
    panel shows the new version."""
    before = session.html("data-notes_saved")
    await session.set(**{_note_input(session): text})
    start = time.perf_counter()
    await session.click("data-save_notes")
    await session.wait_for(lambda s: "1 note saved" in s.html("data-notes_saved")
                           and s.html("data-notes_saved") != before)
    return (time.perf_counter() - start) * 1000.0


def _emit(name: str, samples: list[float], **extra: object) -> None:
    print(json.dumps({"bench": name, "n": len(samples),
                      "median_ms": round(statistics.median(samples), 1),
                      "p95_ms": round(percentile(samples, 0.95), 1),
                      "p99_ms": round(percentile(samples, 0.99), 1),
                      "max_ms": round(max(samples), 1), **extra}))


def _last_seconds(samples: list[tuple[float, float]], seconds: float) -> list[float]:
    """The latencies (ms) of the samples started in the last ``seconds`` of the polling."""
    end = samples[-1][0] if samples else 0.0
    return [ms for at, ms in samples if at >= end - seconds]


def _poll_health(url: str, stop: Any, out: Any) -> None:
    """``GET /healthz`` every 20 ms until ``stop`` is set; puts (start time, latency ms) of each
    on ``out``.

    Runs in a process of its own, so the client's own work (reading the websocket) never
    delays a measurement."""
    samples = []
    while not stop.is_set():
        start = time.perf_counter()
        status, _ = http_get(f"{url}/healthz", timeout=120)
        samples.append((start, (time.perf_counter() - start) * 1000.0))
        if status != 200:
            raise RuntimeError(f"/healthz answered {status}")
        time.sleep(0.02)
    out.put(samples)


async def _bench(url: str, args: argparse.Namespace, uploads: list[bytes]) -> None:
    cookie = await asyncio.to_thread(log_in, url, *USER)
    first, _, _ = await _open(url, cookie)  # warm-up: imports, caches
    await first.close()
    pages, panels = [], []
    for _ in range(args.repeats):
        session, page_ms, panel_ms = await _open(url, cookie)
        pages.append(page_ms)
        panels.append(panel_ms)
        await session.close()
    totals = [a + b for a, b in zip(pages, panels, strict=True)]
    _emit("event_loop.session_start", totals, stored_patients=args.stored,
          page_median_ms=round(statistics.median(pages), 1),
          panel_median_ms=round(statistics.median(panels), 1))

    notes, _, _ = await _open(url, cookie)
    saves = [await _save_note(notes, f"bench note {k}") for k in range(args.repeats)]
    _emit("event_loop.save_notes", saves, stored_patients=args.stored)

    spawn = multiprocessing.get_context("spawn")
    stop, results = spawn.Event(), spawn.Queue()
    poller = spawn.Process(target=_poll_health, args=(url, stop, results))
    poller.start()
    await asyncio.sleep(args.idle_s)  # the poller has started; its first samples: the idle app
    stop.set()
    idle = [ms for _at, ms in results.get(timeout=120)]
    poller.join()
    _emit("event_loop.healthz_idle", idle, stored_patients=args.stored,
          note="the same polling with nothing else running: this machine's floor")

    uploader, _, _ = await _open(url, cookie)
    health: list[float] = []
    durations: list[float] = []
    for k, upload in enumerate(uploads[:-1]):
        samples, upload_ms = await _upload_polled(url, uploader, upload, args.idle_s)
        health += samples
        durations.append(upload_ms)
        if f"{args.rows} cases added" not in uploader.html("data-upload_status"):
            raise RuntimeError(f"upload {k} was not added: {uploader.html('data-upload_status')}")
    _emit("event_loop.healthz_during_upload", health, stored_patients=args.stored,
          upload_rows=args.rows, uploads=len(durations), upload_bytes=len(uploads[0]),
          upload_median_ms=round(statistics.median(durations), 1))

    during: list[float] = []
    started = asyncio.Event()

    async def save_notes_meanwhile() -> None:
        await started.wait()  # from the upload's start until its success line
        while not during or "added" not in uploader.html("data-upload_status"):
            during.append(await _save_note(notes, f"during upload {len(during)}"))
            if len(during) >= 50:
                return

    meanwhile = asyncio.get_running_loop().create_task(save_notes_meanwhile())
    await _upload_polled(url, uploader, uploads[-1], 0.0, started)
    await meanwhile
    _emit("event_loop.save_notes_during_upload", during, stored_patients=args.stored,
          upload_rows=args.rows)
    for s in (notes, uploader):
        await s.close()


async def _upload_polled(url: str, uploader: ShinySession, upload: bytes, lead_s: float,
                         started: asyncio.Event | None = None) -> tuple[list[float], float]:
    """Upload a file in ``uploader`` while another process polls ``/healthz``; (the latencies
    of the polls made while it ran, ms from the upload's start to its success line).
    ``started`` is set when the upload starts."""
    spawn = multiprocessing.get_context("spawn")
    stop, results = spawn.Event(), spawn.Queue()
    poller = spawn.Process(target=_poll_health, args=(url, stop, results))
    poller.start()
    await asyncio.sleep(max(lead_s, 2.0))  # the poller's interpreter has started
    uploader.outputs.pop("data-upload_status", None)
    start = time.perf_counter()
    if started is not None:
        started.set()
    try:
        await uploader.upload("data-upload", "cases.csv", upload)
        await uploader.wait_for(lambda s: "added" in s.html("data-upload_status")
                                or "not loaded" in s.html("data-upload_status"), timeout=600)
        upload_ms = (time.perf_counter() - start) * 1000.0
    finally:
        stop.set()
        samples = results.get(timeout=120)
        poller.join()
    return _last_seconds(samples, upload_ms / 1000.0), upload_ms


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=10_000, help="stored patients")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of the uploaded file")
    parser.add_argument("--repeats", type=int, default=10, help="session starts and note saves")
    parser.add_argument("--uploads", type=int, default=3,
                        help="uploads polled (then one more with note saves meanwhile)")
    parser.add_argument("--idle-s", type=float, default=3.0,
                        help="seconds of /healthz polling with nothing else running")
    parser.add_argument("--app-root", type=Path, default=None,
                        help="serve this checkout of artds instead of the current one")
    return parser


def bench_event_loop(argv: list[str] | None = None) -> None:
    """Run the benchmark with command-line options ``argv`` (default: the defaults)."""
    args = _parser().parse_args([] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "artds.sqlite3"
        url = f"sqlite:///{db}"
        start = time.perf_counter()
        _seed(url, args.stored)
        print(json.dumps({"bench": "event_loop.seed", "stored_patients": args.stored,
                          "seconds": round(time.perf_counter() - start, 1)}))
        first = _upload_file(args.rows)  # files of new patients, one per upload
        uploads = [first.replace(b"\nUP-", f"\nU{k}-".encode()) for k in range(args.uploads + 1)]
        root = {} if args.app_root is None else {"root": args.app_root.resolve()}
        with served_app(url, folder, **root) as app:
            asyncio.run(_bench(app.url, args, uploads))


if __name__ == "__main__":
    import sys

    bench_event_loop(sys.argv[1:])
