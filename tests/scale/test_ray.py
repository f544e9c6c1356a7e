"""Ray, for real: a local cluster on 127.0.0.1 (two CPUs, no dashboard) for the session; skipped without Ray."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wasinn_jupyter.cli import main
from wasinn_jupyter.host import Session, Timeline, WasiOptions
from wasinn_jupyter.scale import InputResult, map_inputs

from .conftest import CLASSIFY, Classifier, behave_job, write_inputs


def test_map_on_ray_classifies_in_input_order(ray_cluster: Any, classifier: Classifier) -> None:
    timeline = Timeline()
    summary = map_inputs(classifier.job(), classifier.images, workers=2, ray="auto", timeline=timeline)
    assert summary.engine == "ray" and summary.failed == 0
    assert [r.input for r in summary.results] == [str(p) for p in classifier.images]
    assert [classifier.top_class(r.stdout) for r in summary.results] == classifier.top
    compiles = [r for r in timeline.records() if r.call == "compile"]
    assert sorted(r.worker for r in compiles) == ["ray-1", "ray-2"]
    computes = [r for r in timeline.records() if r.call == "compute"]
    assert len(computes) == len(classifier.images) and all(r.node and r.worker.startswith("ray-") for r in computes)


def test_an_actor_killed_mid_map_loses_nothing(ray_cluster: Any, tmp_path: Path) -> None:
    paths = write_inputs(tmp_path, [f"sleep-{i}" for i in range(6)])
    seen: list[InputResult] = []

    def on_result(result: InputResult) -> None:
        if not seen:
            os.kill(result.pid, signal.SIGKILL)  # the actor's process: it holds the next input it was handed
        seen.append(result)

    summary = map_inputs(behave_job(), paths, workers=2, ray="auto", on_result=on_result)
    assert [r.stdout for r in seen] == [f"sleep-{i}" for i in range(6)]
    assert all(r.ok for r in seen)
    assert summary.replaced == 1 and summary.retried >= 1


def _classify(session: Session, image: Path) -> tuple[int, str]:
    out: list[bytes] = []
    module = session.compile(CLASSIFY)
    wasi = WasiOptions(argv=["classify", "cnn", image.name], dirs=[(str(image.parent), ".")], stdout=out.append)
    code = session.instantiate(module, wasi=wasi).run()
    return code, b"".join(out).decode()


@pytest.mark.parametrize("replicas", [2, 1])
def test_a_graph_on_ray_actors(ray_cluster: Any, classifier: Classifier, replicas: int) -> None:
    """Guests call it as a local graph; a dead actor is runtime_error with a message, then the graph serves again
    (another replica, or the restarted actor)."""
    from wasinn_jupyter.scale.ray_graphs import RayGraph, register_ray_graph

    with Session() as session:
        info = register_ray_graph(session.host, "cnn", str(classifier.model_path), replicas=replicas, num_cpus=0.5)
        assert info.kind == "torchscript on Ray"
        graph = session.host.registry.get("cnn").graph
        assert isinstance(graph, RayGraph)
        for image, top in zip(classifier.images[:2], classifier.top, strict=False):
            code, out = _classify(session, image)
            assert code == 0 and classifier.top_class(out) == top
        split = [r for r in session.host.timeline.records() if r.kind == "remote"]
        assert [r.call for r in split[:2]] == ["transfer", "remote_compute"]
        assert all(r.graph == "cnn" and r.node and r.worker for r in split)
        computes = [r for r in session.host.timeline.records() if r.call == "compute"]
        assert split[1].duration_ns < computes[0].duration_ns  # the remote compute is a part of the call

        victim = graph._actors[graph._turn]  # the replica the next call goes to
        pid = ray_cluster.get(victim.describe.remote())["pid"]
        os.kill(pid, signal.SIGKILL)
        code, out = _classify(session, classifier.images[0])
        assert code == 1 and "compute failed, errno" in out
        assert session.host.last_error is not None and "its Ray actor died during compute" in session.host.last_error
        then = "another replica" if replicas > 1 else "a restarted actor"
        assert then in session.host.last_error
        code, out = _classify(session, classifier.images[0])
        assert code == 0 and classifier.top_class(out) == classifier.top[0]
        graph.shutdown()


def test_tensors_travel_as_numpy_buffers(ray_cluster: Any) -> None:
    from wasinn_jupyter.host import Tensor
    from wasinn_jupyter.scale.ray_graphs import RayGraph

    graph = RayGraph("echo", "echo", num_cpus=0.5)
    try:
        data = np.arange(12, dtype=np.float32).reshape(3, 4)
        reply = ray_cluster.get(
            graph._actors[0].run.remote([("f32", (3, 4))], ray_cluster.put(data.reshape(-1).view(np.uint8)))
        )
        assert all(isinstance(a, np.ndarray) for a in reply["arrays"])
        (out,) = graph.run([Tensor.from_value(data)])
        assert isinstance(out, Tensor) and np.array_equal(out.to_numpy(), data)
    finally:
        graph.shutdown()


def test_run_serves_preloads_by_ray(
    ray_cluster: Any, classifier: Classifier, capfd: pytest.CaptureFixture[str]
) -> None:
    image = classifier.images[0]
    code = main(
        [
            "run", "--ray", "auto", "--dir", f"{image.parent}::.",
            "--nn-preload", f"cnn:PyTorch:CPU:{classifier.model_path}",
            str(CLASSIFY), "cnn", image.name,
        ]
    )  # fmt: skip
    assert code == 0
    assert classifier.top_class(capfd.readouterr().out) == classifier.top[0]


def test_a_model_ray_cannot_load_is_a_clear_error(ray_cluster: Any, tmp_path: Path) -> None:
    from wasinn_jupyter.host import WasiNNError
    from wasinn_jupyter.scale.ray_graphs import RayGraph

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(WasiNNError, match="did not load on Ray"):
        RayGraph("bad", str(bad), num_cpus=0.5)
