"""Run the benchmarks, each in its own process, and print a summary table.

    python benchmarks/run_all.py [--device cpu|cuda] [--only echo_roundtrip,large_tensor,cnn_model,guest_models]

Each script prints its own detail as it runs; the table at the end repeats the judged figures. A MISS is reported,
not raised: the exit status is 0 unless a script itself fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "echo_roundtrip", "large_tensor", "cnn_model", "guest_models", "wit_throughput", "recording", "residence",
    "tensor_widget", "prompt_tokens",
)  # fmt: skip
WITH_DEVICE = {"large_tensor", "cnn_model", "guest_models", "residence", "tensor_widget"}


def fmt(seconds: float, unit: str) -> str:
    return f"{seconds * 1e6:.1f} µs" if unit == "us" else f"{seconds * 1e3:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="for large_tensor, cnn_model and guest_models"
    )
    p.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated subset of the scripts")
    args = p.parse_args(argv)

    results: list[dict] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            if name not in SCRIPTS:
                raise SystemExit(f"unknown benchmark {name!r} (known: {', '.join(SCRIPTS)})")
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(HERE / f"{name}.py"), "--json", str(out)]
            if name in WITH_DEVICE:
                cmd += ["--device", args.device]
            print(f"$ {' '.join(cmd[1:])}", flush=True)
            if subprocess.run(cmd, check=False).returncode != 0:
                failed.append(name)
            elif out.exists():
                results.extend(json.loads(out.read_text()))
            print(flush=True)

    rows = [("benchmark", "ours", "baseline", "ratio", "target", "result")]
    for r in results:
        sign = ">=" if r["higher_is_better"] else "<="
        rows.append(
            (
                r["name"],
                fmt(r["ours_s"], r["unit"]),
                fmt(r["base_s"], r["unit"]),
                f"{r['ratio']:.3f}x",
                f"{sign} {r['target']}x",
                "PASS" if r["passed"] else "MISS",
            )
        )
    for name in failed:
        rows.append((name, "-", "-", "-", "-", "ERROR"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print("summary (ratios: median of per-repetition paired ratios; see benchmarks/README.md)")
    for i, row in enumerate(rows):
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    for r in results:
        print(f"  {r['name']}: {r['ratio_meaning']}; ours = {r['ours_label']}; baseline = {r['base_label']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
