"""The tensor widget's state as the front-end receives it: summary, bounded heatmap, slices on slider changes,
image and value views, binary buffers, the text fallback, and the ES modules' independence from the network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers

from wasinn_jupyter.host import Tensor
from wasinn_jupyter.widgets import TensorWidget, slices
from wasinn_jupyter.widgets.slices import GRID_SIDE, MAX_SIDE

from .conftest import RecordingComm

STATIC = Path(__file__).resolve().parents[2] / "wasinn_jupyter" / "widgets" / "static"


def heat(w: TensorWidget) -> np.ndarray:
    return np.frombuffer(w.heatmap, "<f4").reshape(w.heatmap_shape)


def cells(w: TensorWidget) -> np.ndarray:
    dtype = {"float64": "<f8", "int64": "<i8", "bool": "u1"}[w.grid_dtype]
    return np.frombuffer(w.grid, dtype).reshape(w.grid_shape)


def test_summary_and_views_of_a_small_matrix() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    w = TensorWidget(t, "x")
    s = w.summary
    assert (s["dtype"], s["shape"], s["device"], s["numel"], s["min"], s["max"]) == ("f32", [3, 4], "cpu", 12, 0, 11)
    assert s["mean"] == pytest.approx(5.5) and s["std"] == pytest.approx(np.arange(12).std())
    assert w.views == ["values", "heatmap", "histogram"] and w.view == "values"
    assert w.sliders == [] and w.index == []
    np.testing.assert_array_equal(cells(w), t.numpy())
    np.testing.assert_array_equal(heat(w), t.numpy())
    assert w.heatmap_range == [0.0, 11.0]
    counts = np.frombuffer(w.histogram, "<f8")
    assert counts.sum() == 12 and w.histogram_range == [0.0, 11.0]


def test_the_heatmap_of_a_large_slice_is_bounded_and_pooled() -> None:
    t = torch.randn(1000, 3000)
    w = TensorWidget(t)
    rows, cols = w.heatmap_shape
    assert rows <= MAX_SIDE and cols <= MAX_SIDE
    assert w.heatmap_source == [1000, 3000]
    sy, sx = w.heatmap_step
    assert (rows, cols) == (-(-1000 // sy), -(-3000 // sx))
    np.testing.assert_allclose(heat(w)[0, 0], t[:sy, :sx].mean().item(), rtol=1e-5)
    np.testing.assert_allclose(heat(w)[-1, -1], t[(rows - 1) * sy :, (cols - 1) * sx :].mean().item(), rtol=1e-5)
    assert "mean of" in w.heatmap_note
    assert w.grid == b"" and "values" not in w.views  # too large to list value by value
    long = TensorWidget(torch.ones(10**6))
    assert long.heatmap_shape[0] == 1 and long.heatmap_shape[1] <= MAX_SIDE


def test_past_the_pool_limit_the_heatmap_takes_every_kth_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slices, "POOL_LIMIT", 1000)
    t = torch.randn(600, 900)
    w = TensorWidget(t)
    sy, sx = w.heatmap_step
    assert not w.heatmap_pooled and "one value per" in w.heatmap_note
    np.testing.assert_array_equal(heat(w), t[::sy, ::sx].numpy())


def test_a_slider_change_sends_that_slice_only(comms: list[RecordingComm]) -> None:
    t = torch.randn(4, 5, 50, 60)
    w = TensorWidget(t)
    assert [s["axis"] for s in w.sliders] == [0, 1] and [s["size"] for s in w.sliders] == [4, 5]
    np.testing.assert_array_equal(heat(w), t[0, 0].numpy())
    (channel,) = [c for c in comms if c.comm_id == w.model_id]
    channel.sent.clear()
    # the message a front-end's slider sends, handled as the kernel's comm manager hands it over
    message = {"method": "update", "state": {"index": [3, 2]}, "buffer_paths": []}
    channel.handle_msg({"content": {"data": message}, "buffers": []})
    assert w.index == [3, 2]
    np.testing.assert_array_equal(heat(w), t[3, 2].numpy())
    np.testing.assert_array_equal(cells(w), t[3, 2].numpy().astype(np.float64))
    (reply,) = [d for kind, d, _ in channel.sent if d.get("method") == "update"]  # one message: the new slice only
    ((_, buffers),) = channel.updates()
    sent = {path[0]: data for path, data in zip(reply["buffer_paths"], buffers, strict=True)}
    assert set(sent) == {"heatmap", "grid"}
    assert set(reply["state"]) == {"heatmap_range"}  # the rest of the state did not change and is not sent
    assert np.frombuffer(sent["heatmap"], "<f4").tolist() == t[3, 2].reshape(-1).tolist()
    assert np.frombuffer(sent["grid"], "<f8").tolist() == t[3, 2].reshape(-1).tolist()
    w.index = [99, -1]  # from a stale front-end: clamped
    assert w.index == [3, 0]
    np.testing.assert_array_equal(heat(w), t[3, 0].numpy())


def test_state_travels_as_binary_buffers_never_as_lists() -> None:
    t = torch.rand(1, 3, 64, 48)
    w = TensorWidget(t)
    state, paths, buffers = _remove_buffers(w.get_state())
    sent = {p[0] for p in paths}
    assert {"heatmap", "histogram", "image"} <= sent
    assert all(isinstance(b, (bytes, memoryview)) for b in buffers)
    code = {"_esm", "_css"}  # the view's own source, sent once with the widget
    text = json.dumps({k: v for k, v in state.items() if k not in code}, allow_nan=False)  # small: no arrays in it
    assert len(text) < 3000
    assert all(not isinstance(v, list) or len(v) <= 8 for v in state.values() if not isinstance(v, dict))


@pytest.mark.parametrize(
    ("shape", "layout", "image_shape"),
    [((1, 3, 40, 50), "chw", [40, 50]), ((40, 50, 3), "hwc", [40, 50]), ((2, 40, 50, 3), "hwc", [40, 50])],
)
def test_the_image_view_is_chosen_for_image_shapes(shape: tuple[int, ...], layout: str, image_shape: list[int]) -> None:
    w = TensorWidget(torch.rand(shape))
    assert w.image_layout == layout and w.view == "image" and "image" in w.views
    assert w.image_shape == image_shape and len(w.image) == 40 * 50 * 4
    assert w.image_note == "values in [0, 1] x 255"
    if layout == "hwc":  # the heatmap shows height x width with a slider over channels
        assert w.heatmap_source == [40, 50] and w.sliders[-1] == {"axis": len(shape) - 1, "size": 3}


def test_no_image_view_for_other_shapes() -> None:
    for t in (torch.rand(1, 3, 3, 3), torch.rand(4, 5), torch.ones(1, 3, 8, 8, dtype=torch.int32)):
        w = TensorWidget(t)
        assert w.image_layout == "" and "image" not in w.views


def test_a_uint8_image_keeps_its_pixels_and_the_batch_slider_moves_it(comms: list[RecordingComm]) -> None:
    t = torch.randint(0, 256, (2, 3, 20, 30), dtype=torch.uint8)
    w = TensorWidget(t)
    rgba = np.frombuffer(w.image, np.uint8).reshape(20, 30, 4)
    np.testing.assert_array_equal(rgba[..., :3], t[0].permute(1, 2, 0).numpy())
    assert (rgba[..., 3] == 255).all() and w.image_note == "uint8 values"
    w.index = [1, 0]
    rgba = np.frombuffer(w.image, np.uint8).reshape(20, 30, 4)
    np.testing.assert_array_equal(rgba[..., :3], t[1].permute(1, 2, 0).numpy())
    (channel,) = [c for c in comms if c.comm_id == w.model_id]
    channel.sent.clear()
    w.index = [1, 2]  # another channel of the same picture: its heatmap is sent, the image is not again
    paths = [p for _, d, _ in channel.sent if d.get("method") == "update" for p in d["buffer_paths"]]
    assert ["heatmap"] in paths and ["image"] not in paths
    big = TensorWidget(torch.rand(1, 3, 1000, 800) * 10)
    assert max(big.image_shape) <= 384 and "stretched" not in big.image_note and "[0, 255]" in big.image_note


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32, torch.int64, torch.uint8, torch.bool])
def test_every_dtype_has_a_summary_heatmap_and_values(dtype: torch.dtype) -> None:
    t = (torch.arange(24).reshape(2, 3, 4) % 5).to(dtype)
    w = TensorWidget(t)
    expected = t.to(torch.float64).numpy()
    assert w.summary["min"] == expected.min() and w.summary["max"] == expected.max()
    assert w.summary["mean"] == pytest.approx(expected.mean())
    np.testing.assert_array_equal(cells(w).astype(np.float64), expected[0])
    np.testing.assert_array_equal(heat(w), expected[0].astype(np.float32))
    assert w.grid_dtype == ("bool" if dtype == torch.bool else "float64" if dtype.is_floating_point else "int64")


@pytest.mark.parametrize("dtype", [torch.uint16, torch.uint32, torch.float8_e4m3fn, torch.float8_e5m2])
def test_types_torch_reduces_little_are_widened_and_still_named(dtype: torch.dtype) -> None:
    t = (torch.arange(12).reshape(3, 4) % 7).to(dtype)
    w = TensorWidget(t)
    name = str(dtype).removeprefix("torch.")
    assert (w.summary["dtype"], w.summary["nbytes"]) == (name, 12 * t.element_size())
    assert (w.summary["min"], w.summary["max"]) == (0, 6) and w.summary["notes"][0].startswith(f"{name} computed as")
    np.testing.assert_array_equal(cells(w), (np.arange(12).reshape(3, 4) % 7))
    assert np.frombuffer(TensorWidget(np.arange(3, dtype=np.uint32)).grid, "<i8").tolist() == [0, 1, 2]


def test_int64_values_are_exact_in_the_grid() -> None:
    t = torch.tensor([2**62 + 1, -(2**62) - 3])
    w = TensorWidget(t)
    assert cells(w).tolist() == [[2**62 + 1, -(2**62) - 3]]
    assert w.summary["text"]["max"] == str(2**62 + 1)


def test_nan_and_inf_are_counted_and_drawn_apart() -> None:
    t = torch.ones(4, 4)
    t[0, 0] = float("nan")
    t[1, 1] = float("inf")
    w = TensorWidget(t)
    assert (w.summary["nan"], w.summary["posinf"]) == (1, 1)
    assert np.isnan(heat(w)[0, 0]) and heat(w)[1, 1] == np.inf
    assert w.heatmap_range == [1.0, 1.0]
    assert "1 NaN, 1 +inf" in repr(w)


def test_numpy_and_host_tensors_and_a_vector_grid() -> None:
    w = TensorWidget(np.arange(100, dtype=np.int32), "v")
    assert w.summary["dtype"] == "i32" and w.grid_shape == [1, 100] and w.heatmap_shape == [1, 100]
    assert cells(w).ravel().tolist() == list(range(100))
    w = TensorWidget(np.arange(GRID_SIDE * GRID_SIDE + 1, dtype=np.float32))
    assert w.grid == b""
    w = TensorWidget(Tensor.from_value(torch.tensor([[1.5, 2.5]], dtype=torch.bfloat16)))
    assert w.summary["dtype"] == "bf16" and cells(w).tolist() == [[1.5, 2.5]]
    w = TensorWidget(np.float32(3.0))  # a scalar
    assert w.summary["shape"] == [] and cells(w).tolist() == [[3.0]]


def test_empty_and_meta_tensors_show_a_summary_only() -> None:
    for t in (torch.empty(0, 5), torch.empty(2, 3, device="meta")):
        w = TensorWidget(t)
        assert w.views == [] and w.heatmap == b"" and w.summary["shape"] == list(t.shape)


def test_released_widgets_keep_their_view_and_say_so() -> None:
    w = TensorWidget(torch.randn(3, 4, 5))
    before = w.heatmap
    w.release()
    w.index = [2]
    assert not w.live and w.heatmap == before and "released" in w.error


def test_text_fallback_for_frontends_without_widgets() -> None:
    w = TensorWidget(torch.tensor([1.0, 2.0, 3.0]), "scores")
    data, _ = w._repr_mimebundle_()
    assert data["text/plain"] == "scores: f32[3] · cpu · min 1 max 3 mean 2 std 0.816497"
    assert "application/vnd.jupyter.widget-view+json" in data


def test_the_es_modules_import_nothing_and_fetch_nothing() -> None:
    for path in STATIC.glob("*.js"):
        text = path.read_text()
        assert not re.search(r"^\s*import\b|\bimport\s*\(|\brequire\s*\(", text, re.M), path.name
        assert not re.search(r"https?://|//cdn|fetch\(", text), path.name
        assert "export default" in text
    for path in STATIC.glob("*.css"):
        assert "@import" not in path.read_text() and "url(" not in path.read_text()


@pytest.mark.gpu
def test_a_cuda_tensor_is_summarised_and_sliced_on_its_device() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    t = torch.randn(3, 2000, 2000, device="cuda", dtype=torch.float16)
    w = TensorWidget(t)
    assert w.summary["device"].startswith("cuda") and max(w.heatmap_shape) <= MAX_SIDE
    w.index = [2]
    np.testing.assert_allclose(heat(w)[0, 0], t[2, :8, :8].float().mean().item(), rtol=1e-3)
