"""The compute card: alone, and as ``%%wasinn compute`` shows it in a real ipykernel, where a client moves a
slider over the comm and gets the new slice back as a binary buffer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from jupyter_client.manager import KernelManager, start_new_kernel

from wasinn_jupyter.widgets import ComputeView, TensorWidget

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_tabs_build_their_widget_when_opened_and_release_their_tensors() -> None:
    x, y = torch.randn(2, 3, 4), torch.arange(5)
    card = ComputeView("compute 'g' through 'driver' in 1.0 ms", [("x", x)], [("y", y)])
    assert [card.tabs.get_title(i) for i in range(2)] == ["in: x", "out: y"]
    assert card.tabs.selected_index == 1
    assert isinstance(card.tabs.children[1].children[0], TensorWidget)
    assert card.tabs.children[0].children == ()  # not opened: nothing computed for it yet
    card.tabs.selected_index = 0
    (shown,) = card.tabs.children[0].children
    assert isinstance(shown, TensorWidget) and shown.summary["shape"] == [2, 3, 4]
    assert card.tensor_widget("out: y").summary["max"] == 4
    assert repr(card) == "compute 'g' through 'driver' in 1.0 ms\n  in: x: f32[2, 3, 4] cpu\n  out: y: i64[5] cpu"
    bundle = card._repr_mimebundle_()
    assert bundle["text/plain"] == repr(card) and WIDGET_VIEW in bundle
    card.release()
    assert not shown.live and card._tensors == [None, None]


def test_a_tensor_without_a_numeric_view_says_so_in_its_tab() -> None:
    card = ComputeView("t", [], [("z", torch.ones(2, dtype=torch.complex64))])
    assert "real numbers" in card.tabs.children[0].children[0].value


# -- in a real kernel ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cwd = tmp_path_factory.mktemp("kernel")
    km: KernelManager
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60, cwd=str(cwd))
    try:
        execute(kc, f"import os; os.environ['WASINN_CACHE_DIR'] = {str(cwd / 'cache')!r}")
        execute(kc, "%load_ext wasinn_jupyter\nimport torch\n%wasinn load echo echo")
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def execute(kc: Any, code: str, timeout: float = 120) -> list[dict[str, Any]]:
    """Run ``code``; its iopub messages up to idle (raises on an error reply)."""
    msg_id = kc.execute(code)
    return until_idle(kc, msg_id, timeout)


def until_idle(kc: Any, msg_id: str, timeout: float = 120) -> list[dict[str, Any]]:
    messages = []
    error = None
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            error = "\n".join(msg["content"]["traceback"])
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    # Raised only once the kernel is idle: a request sent while it still handles the error is aborted unrun.
    if error is not None:
        raise AssertionError(error)
    return messages


def opened_widgets(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """comm_id -> the comm_open message of each widget model the kernel opened."""
    return {m["content"]["comm_id"]: m for m in messages if m["msg_type"] == "comm_open"}


def test_compute_shows_a_card_of_tensor_widgets_and_keeps_its_value(kernel: Any) -> None:
    messages = execute(kernel, "%%wasinn compute echo -o out\ntorch.arange(24.0).reshape(2, 3, 4)")
    (card,) = [m for m in messages if m["msg_type"] == "display_data"]
    assert WIDGET_VIEW in card["content"]["data"]
    text = card["content"]["data"]["text/plain"]
    assert text.startswith("compute 'echo' through 'driver' in ") and "out: output0: f32[2, 3, 4] cpu" in text
    (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
    assert "tensor([[[ 0.,  1.,  2.,  3.]" in result["content"]["data"]["text/plain"]  # the value, as before
    tensors = [m for m in opened_widgets(messages).values() if m["content"]["data"]["state"].get("summary")]
    (output,) = tensors  # only the opened tab (the output) was computed
    state = output["content"]["data"]["state"]
    assert state["summary"]["shape"] == [2, 3, 4] and state["index"] == [0]
    paths = output["content"]["data"]["buffer_paths"]
    assert ["heatmap"] in paths and ["histogram"] in paths and len(output["buffers"]) == len(paths)
    assert "heatmap" not in state  # binary state is in the buffers, not in the JSON

    # the front-end's slider: a comm message to the widget; the kernel answers with slice 1 as a buffer
    comm_id = output["content"]["comm_id"]
    data = {"method": "update", "state": {"index": [1]}, "buffer_paths": []}
    msg = kernel.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kernel.shell_channel.send(msg)
    replies = until_idle(kernel, msg["header"]["msg_id"])
    (update,) = [m for m in replies if m["msg_type"] == "comm_msg" and m["content"]["data"]["method"] == "update"]
    sent = dict(zip((p[0] for p in update["content"]["data"]["buffer_paths"]), update["buffers"], strict=True))
    heat = np.frombuffer(sent["heatmap"], "<f4").reshape(3, 4)
    np.testing.assert_array_equal(heat, np.arange(12, 24, dtype=np.float32).reshape(3, 4))


def test_params_in_a_kernel_and_widgets_off(kernel: Any) -> None:
    execute(kernel, "net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()\n%wasinn load net net")
    messages = execute(kernel, "%wasinn params net")
    (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
    assert WIDGET_VIEW in result["content"]["data"]
    assert result["content"]["data"]["text/plain"].startswith("graph 'net': 8 parameter values in 2 tensors")
    trees = [m for m in opened_widgets(messages).values() if "rows" in m["content"]["data"]["state"]]
    assert {r["name"] for r in trees[0]["content"]["data"]["state"]["rows"]} == {"0.weight", "0.bias"}
    execute(kernel, "%config WasinnMagics.widgets = False")
    try:
        messages = execute(kernel, "%%wasinn compute echo\ntorch.ones(2)")
    finally:
        execute(kernel, "%config WasinnMagics.widgets = True")
    assert not [m for m in messages if m["msg_type"] == "display_data"]
    assert [m for m in messages if m["msg_type"] == "execute_result"]


def test_params_of_an_unknown_graph_is_a_short_error(kernel: Any) -> None:
    with pytest.raises(AssertionError, match="no graph named 'nothing'"):
        execute(kernel, "%wasinn params nothing")


def test_show_displays_one_widget_from_anywhere_in_a_cell(kernel: Any) -> None:
    messages = execute(kernel, "from wasinn_jupyter.widgets import show\nshow(torch.ones(3), 'ones')")
    (shown,) = [m for m in messages if m["msg_type"] == "display_data"]
    assert shown["content"]["data"]["text/plain"].startswith("ones: f32[3] · cpu · min 1 max 1")
    assert not [m for m in messages if m["msg_type"] == "execute_result"]


def test_older_cards_let_go_of_their_tensors(kernel: Any) -> None:
    from wasinn_jupyter.magics.core import CARDS_KEPT

    magics = "[c for c in get_ipython().configurables if type(c).__name__ == 'WasinnMagics'][0]"
    execute(kernel, "%%wasinn compute echo\ntorch.ones(3, 4)")
    execute(kernel, f"first = {magics}._cards[-1]")
    for _ in range(CARDS_KEPT):
        execute(kernel, "%%wasinn compute echo\ntorch.zeros(2)")
    messages = execute(kernel, f"print(first._tensors, first.tensor_widget('out: output0').live, len({magics}._cards))")
    (printed,) = [m["content"]["text"] for m in messages if m["msg_type"] == "stream"]
    assert printed.split() == ["[None,", "None]", "False", str(CARDS_KEPT)]
