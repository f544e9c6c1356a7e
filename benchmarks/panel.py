"""(f) The JupyterLab timeline panel: what streaming to it costs a guest, and how it draws 100,000 calls.

1. In a real ipykernel (jupyter_client, no browser): a WAT guest sends ``--rounds`` tensors through the echo graph
   (3 wasi-nn calls a round) with a panel subscribed to the kernel's timeline comm (every record encoded and sent in
   batches from the feed's thread) and with none, alternating. Judged: the paired ratio of the two run times, at
   most 1.3x (the feed's thread takes the GIL from the guest's thread while it encodes).
2. In a real JupyterLab and Debian's Chromium (tests/labextension/lab_harness.py): 100,001 calls streamed into the
   panel; printed, not judged: when all were shown, a full redraw of all of them, and the page's frame intervals
   while they streamed. Skipped, saying why, where chromium or the built extension is missing.

    python benchmarks/panel.py [--reps 5] [--rounds 5000] [--no-browser]
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from _common import dump, judge, parser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "labextension"))
from lab_harness import Lab, calls_for, echo_loop_wat, missing

TARGET = 1.3


def execute(kc: Any, code: str, timeout: float = 600) -> float:
    """Run ``code`` in the kernel; seconds until it was idle again (comm messages meanwhile are drained)."""
    started = time.perf_counter()
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["msg_type"] == "error":
            raise RuntimeError(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        if (
            msg["parent_header"].get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
        ):
            return time.perf_counter() - started


def feed_overhead(reps: int, rounds: int) -> Any:
    from jupyter_client.manager import start_new_kernel

    print(f"(f1) a guest making {calls_for(rounds):,} wasi-nn calls, with and without a panel listening")
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        execute(kc, "%load_ext wasinn_jupyter")
        source = f"%%wasinn guest loop --lang wat\n{echo_loop_wat(rounds)}"
        times: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(reps + 1):  # the first pair warms up
            for listening in (True, False) if rep % 2 else (False, True):
                execute(kc, "%wasinn reset\n%wasinn load echo echo")  # a fresh timeline: no replay to send
                execute(kc, source)
                comm_id = uuid.uuid4().hex
                if listening:  # subscribe as the panel does, and close when done as a closed page does
                    kc.session.send(
                        kc.shell_channel.socket,
                        "comm_open",
                        {"comm_id": comm_id, "target_name": "wasinn.timeline", "data": {"type": "subscribe"}},
                    )
                    time.sleep(0.3)
                took = execute(kc, "%wasinn run loop")
                if listening:
                    kc.session.send(kc.shell_channel.socket, "comm_close", {"comm_id": comm_id, "data": {}})
                if rep:
                    times[listening].append(took)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return judge(
        "panel_feed",
        "guest run, panel listening",
        times[True],
        "guest run, no panel",
        times[False],
        unit="ms",
        target=TARGET,
        higher_is_better=False,
        ratio_meaning="run time with / without the panel's feed",
        notes=[f"{calls_for(rounds):,} calls a run; records go in batches at most every 100 ms"],
    )


def browser_figures(rounds: int = 33_333) -> None:
    why = missing()
    if why:
        print(f"(f2) skipped: {why}")
        return
    print(f"(f2) {calls_for(rounds):,} calls streamed into the panel in JupyterLab, headless Chromium")
    cells = [
        "%load_ext wasinn_jupyter\n%wasinn load echo echo",
        f"%%wasinn guest big --lang wat\n{echo_loop_wat(rounds)}",
        "%wasinn run big",
    ]
    lab = Lab(cells).start()
    try:
        page = lab.open()
        lab.run_cell(0)
        lab.run_cell(1)
        page.evaluate("() => window.jupyterapp.commands.execute('wasinn-timeline:open')")
        page.evaluate(
            """() => { window.__frames = []; let last = performance.now(); window.__stopFrames = false;
               const tick = now => { window.__frames.push(now - last); last = now;
                 if (!window.__stopFrames) requestAnimationFrame(tick); };
               requestAnimationFrame(tick); }"""
        )
        started = time.monotonic()
        lab.run_cell(2)
        ran = time.monotonic() - started
        calls = calls_for(rounds)
        page.wait_for_function(
            f"() => Number(document.querySelector('.wasinn-timeline').dataset.marks) >= {calls}", timeout=300_000
        )
        shown = time.monotonic() - started
        frames = sorted(page.evaluate("() => { window.__stopFrames = true; return window.__frames; }")[5:])
        redraws = lab.full_redraws(20)
        print(f"  guest run (kernel busy)        {ran:8.2f} s")
        print(f"  all {calls:,} marks shown      {shown:8.2f} s after the run started")
        redraw = f"median {statistics.median(redraws):.1f} ms, max {max(redraws):.1f} ms"
        print(f"  full redraw of {calls:,} marks  {redraw}")
        print(
            f"  frame interval while streaming median {statistics.median(frames):.1f} ms, "
            f"p95 {frames[int(len(frames) * 0.95) - 1]:.1f} ms, max {frames[-1]:.1f} ms ({len(frames)} frames)"
        )
    finally:
        lab.close()


def main() -> int:
    p = parser(__doc__.splitlines()[0], reps=5)
    p.add_argument("--rounds", type=int, default=5000, help="guest rounds a run in (f1), 3 calls each")
    p.add_argument("--no-browser", action="store_true", help="only (f1)")
    args = p.parse_args()
    result = feed_overhead(args.reps, args.rounds)
    dump([result], args.json)
    if not args.no_browser:
        browser_figures()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
