"""Key outputs of tutorials 5 (prompts) and 6 (components), checked after test_tutorials.py executes them.

test_tutorials.py runs every notebook once and looks up its checks in ``CHECKS``; these two are kept here. The
language model is trained in the notebook (seeded, one thread), so its greedy replies are what it learned.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .test_tutorials import Ran

WIDGET = "application/vnd.jupyter.widget-view+json"


def check_05(ran: Ran) -> None:
    assert re.search(r"trained 35,744 parameters in [\d.]+ s", ran.output("import os"))
    assert "model.safetensors" in ran.output("import os")
    assert "language model (tinygpt)" in ran.output("%load_ext wasinn_jupyter")
    streamed = ran.output("from wasinn_jupyter.magics import workbench")
    assert "\n' runs the model." in streamed and streamed.startswith(" runs the model."), streamed  # piece by piece
    prompted = ran.output("%%wasinn prompt chat")
    assert re.search(r"\[40 tokens in [\d.]+ s, [\d.]+ tokens/s\]", prompted) and "the model writes" in prompted
    assert len(ran.cells("%%wasinn prompt chat")[0].outputs) > 3, "the reply did not stream"
    assert "temperature = 0.8 (float)" in ran.output("params = %wasinn params chat")
    assert WIDGET in ran.mimetypes("params = %wasinn params chat")
    sampled = ran.output('params.set("temperature"')
    replies = sampled.splitlines()
    assert replies[0] == replies[1] != replies[2].removesuffix(" <- seed 8"), replies  # same seed, same reply
    assert "temperature = 1.5 (float)" in sampled and "seed = 8 (int)" in sampled
    assert "top_p must lie in [0, 1]" in ran.output("from wasinn_jupyter.host import WasiNNError")
    records = ran.output("for r in workbench()")
    rates = re.findall(r" 40 tokens in +[\d.]+ ms: +(\d+) tokens/s", records)
    assert len(rates) == 5 and all(int(r) > 0 for r in rates) and "%%wasinn prompt " in records, records
    assert "<wasi-nn timeline: 5 calls" in ran.output("%wasinn timeline --call prompt")
    assert "image/png" in ran.mimetypes("%wasinn timeline --call prompt")
    guest = ran.output("!wasinn run --nn-preload default:GGML:AUTO:tiny-lm")
    assert 'output 1 says {"input_tokens": 9, "output_tokens": 0' in guest, guest
    assert "[INFO] ended with errno 100 (end_of_sequence)" in guest and '"output_tokens": 40' in guest
    assert re.search(r"\ncompute_single +41 +1 ", guest) and re.search(r"\nget_output_single +40 +0 ", guest)
    assert re.search(r"prompt graphs: 40 tokens in [\d.]+ s of wasi-nn calls \([\d.]+ tokens/s\)", guest)


def check_06(ran: Ran) -> None:
    try:
        metadata.version("componentize-py")
    except metadata.PackageNotFoundError:  # the notebook runs on, saying how to install it
        assert "pip install componentize-py" in ran.output("%%wasinn guest py --lang python")
        assert "no guest named 'py'" in ran.output("%wasinn run py\n")
    else:
        assert "guest 'py': python," in ran.output("%%wasinn guest py --lang python")
        py = ran.output("%wasinn run py\n")
        assert "scores: FP32 [2] (97.0, 95.0)" in py and "'precision': 'fp32'" in py, py
        assert "get-property('colour'): None" in py
        assert "set-property refused: " in py and "guests may read its properties but not change them" in py
        assert "compute with a wrong name: invalid-argument - graph 'scorer' takes inputs" in py
        assert re.search(r"prompt: ' ?\S", py), py
        wit = re.search(r"1,048,576 bytes over WIT: ([\d.]+) MB/s guest -> host .*, ([\d.]+) MB/s host -> guest",
                        ran.output("%wasinn run py bytes 1"))  # fmt: skip
        assert wit and float(wit.group(1)) > 0 and float(wit.group(2)) > 0, ran.output("%wasinn run py bytes 1")
        capped = ran.output("%wasinn run py bytes 3")  # 3 MiB from the guest: past wasmtime's hostcall fuel
        assert "list<u8> up to 2,796,202 bytes" in capped and "witx wasi-nn ABI, which has no such limit" in capped
    from_python = ran.output("from wasinn_jupyter.magics import workbench")
    assert "{'scores': Tensor(f32, dims=[2]" in from_python and "'precision': 'bf16'" in from_python
    assert "[97. 95.] (computed in bf16)" in from_python
    named = ran.output("%wasinn run named")
    assert "scores: dims [2], 97 95" in named and "get_property(precision): fp32" in named
    assert "with a name the model lacks: invalid_argument" in named
    witx = ran.output("last = {r.call: r")
    assert re.search(r"witx set_input +1,048,576 bytes in +\d+ µs: +[\d.]+ GB/s", witx), witx
    assert re.search(r"witx get_output +1,048,576 bytes in +\d+ µs: +[\d.]+ GB/s", witx), witx
