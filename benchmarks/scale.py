"""(s) wasinn map: images through the classification example guest, one worker against two, locally and on Ray;
and the per-input overhead of Ray against the local pool.

The guest is examples/classify.wat, the model examples/make_model.py's CNN (TorchScript, seed 0), the inputs
``--images`` random 1x3x32x32 f32 images. Four pools start first and stay up (their start is printed, not timed
with the maps): local 1 worker, local 2 workers, Ray 1 actor, Ray 2 actors, on a local Ray cluster this script
starts (127.0.0.1, no dashboard). Each timed sample is one whole map over the images on one pool; the pools take
turns within each repetition, in alternating order. Figures, time per input:

- local, 2 workers against 1: the throughput ratio (time per input with 1 / with 2); judged >= 1.5 on 2 cores;
- Ray, 2 actors against 1: the same on Ray; judged >= 1.5;
- Ray against local, 1 worker each: the per-input overhead of Ray (its time per input / the local pool's, and the
  difference in ms); judged <= 1.5.

The outputs are checked: every input's top class must be the one torch gives. Not a test: run it alone (a Ray
cluster and six worker processes take a minute to start on 2 cores, so run_all.py leaves it out).

    python benchmarks/scale.py [--reps 7] [--images 32]
"""

from __future__ import annotations

import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import dump, interleaved, judge, parser

from wasinn_jupyter.scale import MapJob, Preload, Workers
from wasinn_jupyter.scale.ray_support import start_local

ROOT = Path(__file__).resolve().parents[1]
CLASSIFY = ROOT / "examples" / "classify.wat"


def main() -> None:
    p = parser(__doc__.splitlines()[0], reps=7)
    p.add_argument("--images", type=int, default=32, help="inputs per map (default 32)")
    args = p.parse_args()
    try:
        import ray
    except ImportError:
        print("(s) Ray is not installed (pip install 'wasinn-jupyter[ray]'): nothing measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_model = runpy.run_path(str(ROOT / "examples" / "make_model.py"), run_name="make_model")
        torch.manual_seed(0)
        model = make_model["TinyCNN"]().eval()
        torch.jit.save(torch.jit.script(model), folder / "tiny_cnn.pt")
        images, expected = [], []
        for i in range(args.images):
            image = np.random.default_rng(i).random((1, 3, 32, 32), dtype=np.float32)
            path = folder / f"img{i:03d}.bin"
            path.write_bytes(image.tobytes())
            images.append(path)
            with torch.inference_mode():
                expected.append(int(model(torch.from_numpy(image)).argmax()))
        job = MapJob(
            wasm=CLASSIFY.read_bytes(),
            guest_name="classify.wat",
            args=["cnn", "{}"],
            preloads=[Preload("cnn", "pytorch", "cpu", str(folder / "tiny_cnn.pt"))],
        )
        start_local(num_cpus=4)  # logical CPUs: the four pools are up together, and take turns
        pools = {
            "local 1": Workers(job, workers=1),
            "local 2": Workers(job, workers=2),
            "ray 1": Workers(job, workers=1, ray="auto"),
            "ray 2": Workers(job, workers=2, ray="auto"),
        }
        try:
            for name, pool in pools.items():
                began = time.perf_counter()
                pool.start()
                print(f"  start     {name:<8} {time.perf_counter() - began:6.2f} s  (processes, torch, model, guest)")

            def side(pool: Workers) -> float:
                summary = pool.map(images)
                got = [int(r.stdout.strip().splitlines()[-1].split()[-1]) if r.ok else -1 for r in summary.results]
                if got != expected:
                    sys.exit(f"(s) wrong answers from {summary.engine} x{summary.workers}: {got} != {expected}")
                return summary.wall_s / len(images)

            names = list(pools)
            samples = dict(
                zip(names, interleaved([lambda p=pools[n]: side(p) for n in names], args.reps, 1), strict=True)
            )
        finally:
            for pool in pools.values():
                pool.close()
            ray.shutdown()
    results = []
    print(f"(s) local pool, 2 workers against 1 ({args.images} images per map)")
    results.append(
        judge("map local 2w/1w", "2 workers", samples["local 2"], "1 worker", samples["local 1"], unit="ms",
              target=1.5, higher_is_better=True, ratio_meaning="throughput, 2 local workers over 1")
    )  # fmt: skip
    print("(s) Ray, 2 actors against 1")
    results.append(
        judge("map ray 2w/1w", "2 actors", samples["ray 2"], "1 actor", samples["ray 1"], unit="ms",
              target=1.5, higher_is_better=True, ratio_meaning="throughput, 2 Ray actors over 1")
    )  # fmt: skip
    print("(s) per input, Ray against the local pool (1 worker each)")
    overhead = statistics.median(samples["ray 1"]) - statistics.median(samples["local 1"])
    results.append(
        judge("map ray/local 1w", "Ray, 1 actor", samples["ray 1"], "local, 1 worker", samples["local 1"], unit="ms",
              target=1.5, higher_is_better=False, ratio_meaning="time per input, Ray over the local pool",
              notes=[f"Ray's overhead per input: {overhead * 1e3:+.2f} ms (medians)"])
    )  # fmt: skip
    dump(results, args.json)


if __name__ == "__main__":
    main()
