"""Model formats as first-class paths: torch.export programs (.pt2) and TorchScript, through Host.compute with the
names each format declares, quietly, on the CPU and (where there is one) on a GPU."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from wasinn_jupyter.host import ErrorCode, Host, WasiNNError
from wasinn_jupyter.host.backends.torch import quiet_torchscript


class Scorer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, image: torch.Tensor, bias: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"scores": self.linear(image) + bias.sum(), "shifted": image - bias}


class Positional(nn.Module):
    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return xs[0] - xs[1]


@pytest.fixture(scope="module")
def scorer() -> nn.Module:
    torch.manual_seed(0)
    return Scorer().eval()


@pytest.fixture
def files(tmp_path: Path, scorer: nn.Module) -> dict[str, Path]:
    image, bias = torch.rand(2, 3), torch.rand(2, 3)
    torch.export.save(torch.export.export(scorer, (image, bias)), tmp_path / "scorer.pt2")
    with quiet_torchscript():
        torch.jit.save(torch.jit.script(scorer), tmp_path / "scorer.pt")
    return {"export": tmp_path / "scorer.pt2", "torchscript": tmp_path / "scorer.pt"}


@pytest.mark.parametrize("kind", ["export", "torchscript"])
def test_compute_by_the_names_the_format_declares_and_quietly(files, scorer, kind) -> None:
    image, bias = torch.rand(2, 3), torch.rand(2, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host = Host()
        info = host.register("scorer", files[kind])
        out = host.compute("scorer", {"bias": bias, "image": image})  # any order
    assert not caught, [str(w.message) for w in caught]
    assert info.kind == {"export": "torch.export", "torchscript": "torchscript"}[kind]
    assert [t.name for t in info.inputs or []] == ["image", "bias"]
    expected = scorer(image, bias)
    assert list(out) == ["scores", "shifted"]  # the model's dict keys
    for name in out:
        torch.testing.assert_close(out[name].to_torch(), expected[name])
    calls = [(r.call, r.guest, r.graph) for r in host.timeline.records() if r.kind == "call"]
    assert ("compute_named", "python", "scorer") in calls


def test_wrong_names_say_what_the_model_takes(files) -> None:
    host = Host()
    host.register("scorer", files["export"])
    with pytest.raises(WasiNNError) as err:
        host.compute("scorer", {"image": torch.rand(2, 3), "colour": torch.rand(2, 3)})
    assert err.value.code is ErrorCode.INVALID_ARGUMENT
    assert "takes inputs ['image', 'bias']; unknown ['colour'], missing ['bias']" in err.value.message


def test_a_model_without_names_takes_input0_input1_by_position() -> None:
    host = Host()
    host.register("pos", Positional())
    a, b = torch.tensor([5.0, 7.0]), torch.tensor([1.0, 2.0])
    (out,) = host.compute("pos", {"input1": b, "input0": a}).values()
    assert out.to_torch().tolist() == [4.0, 5.0]


def test_an_export_program_never_loads_from_a_torchscript_name_or_guest_bytes(files, tmp_path) -> None:
    disguised = tmp_path / "disguised.pt"
    disguised.write_bytes(files["export"].read_bytes())
    host = Host()
    with pytest.raises(WasiNNError) as err:
        host.register("bad", disguised)
    assert err.value.code is ErrorCode.INVALID_ENCODING and "loads only from a file named .pt2" in err.value.message
    with host.client() as client, pytest.raises(WasiNNError) as err:
        client.load([files["export"].read_bytes()], "pytorch", "cpu")
    assert err.value.code is ErrorCode.INVALID_ENCODING


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_an_export_program_runs_on_the_gpu_and_moves_back(files, scorer) -> None:
    host = Host()
    info = host.register("scorer", files["export"], target="gpu")
    assert info.device.startswith("cuda")
    image, bias = torch.rand(2, 3), torch.rand(2, 3)
    out = host.compute("scorer", {"image": image, "bias": bias})
    torch.testing.assert_close(out["scores"].to_torch().cpu(), scorer(image, bias)["scores"], rtol=1e-4, atol=1e-4)
    host.set_property("scorer", "device", "cpu")
    out = host.compute("scorer", {"image": image, "bias": bias})
    assert out["scores"].device == "cpu"
    torch.testing.assert_close(out["scores"].to_torch(), scorer(image, bias)["scores"])


def test_the_readme_phase3_snippet_runs_as_printed(tmp_path) -> None:
    import re
    import subprocess
    import sys

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = text[text.index("\n## Phase 3") :]
    (snippet,) = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ", 1)], re.S)
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "{'scores': Tensor(f32, dims=[2], device=cpu)}"
    assert lines[1] == "{'precision': 'fp32', 'device': 'cpu', 'threads': '0', 'residence': 'memory'}"
