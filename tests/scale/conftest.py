"""Fixtures for the map and Ray tests: the behaving guest, the quickstart's CNN with images, one Ray cluster."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wasinn_jupyter.scale.job import MapJob, Preload
from wasinn_jupyter.scale.ray_support import INSTALL_HINT, start_local

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BEHAVE = HERE / "behave.wat"
CLASSIFY = ROOT / "examples" / "classify.wat"


def write_inputs(folder: Path, contents: list[str]) -> list[Path]:
    """One file per text, named in order (in00.txt, in01.txt...), so a directory lists them as given."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(contents):
        path = folder / f"in{i:02d}.txt"
        path.write_text(text)
        paths.append(path)
    return paths


def behave_job(**kwargs: Any) -> MapJob:
    return MapJob(wasm=BEHAVE.read_bytes(), guest_name="behave.wat", args=["{}"], **kwargs)


class Classifier:
    """The quickstart's CNN (examples/make_model.py) saved as TorchScript, images for it, and torch's answers."""

    def __init__(self, folder: Path, images: int) -> None:
        import torch

        make_model = runpy.run_path(str(ROOT / "examples" / "make_model.py"), run_name="make_model")
        torch.manual_seed(0)
        model = make_model["TinyCNN"]().eval()
        self.model_path = folder / "tiny_cnn.pt"
        torch.jit.save(torch.jit.script(model), self.model_path)
        self.images_dir = folder / "images"
        self.images_dir.mkdir()
        self.images: list[Path] = []
        self.top: list[int] = []
        for i in range(images):
            image = np.random.default_rng(i).random((1, 3, 32, 32), dtype=np.float32)
            path = self.images_dir / f"img{i:02d}.bin"
            path.write_bytes(image.tobytes())
            self.images.append(path)
            with torch.inference_mode():
                self.top.append(int(model(torch.from_numpy(image)).argmax()))

    def job(self, **kwargs: Any) -> MapJob:
        return MapJob(
            wasm=CLASSIFY.read_bytes(),
            guest_name="classify.wat",
            args=["cnn", "{}"],
            preloads=[Preload("cnn", "pytorch", "cpu", str(self.model_path))],
            **kwargs,
        )

    @staticmethod
    def top_class(stdout: str) -> int:
        last = stdout.strip().splitlines()[-1]
        assert last.startswith("top class: "), stdout
        return int(last.removeprefix("top class: "))


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    return Classifier(tmp_path_factory.mktemp("classifier"), images=6)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A real local Ray cluster on 127.0.0.1 with this machine's CPUs (two here), no dashboard, for the session."""
    ray = pytest.importorskip("ray", reason=f"Ray is not installed; {INSTALL_HINT}")
    started = not ray.is_initialized()
    if started:
        start_local(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()
