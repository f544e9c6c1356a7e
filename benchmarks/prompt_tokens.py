"""(g) Tokens per second on a prompt graph: a guest streaming its reply through WasmEdge's compute_single, against
the same reply generated from Python.

The model is the package's small GPT (2 layers, 64 wide) with its token embeddings zeroed, so that every reply has
exactly N tokens whatever the weights (greedy decoding never picks the end of text). Both sides generate with one
torch thread (the graph's ``threads`` property): on this 2-core machine, shared with other work, torch's spinning
intra-op threads made the main thread up to 30x slower than a guest's thread. Sides, interleaved:

- ours (judged): a C guest (below) that loads the graph with load_by_name_with_config, sets the prompt, then calls
  compute_single and get_output_single once per token until end_of_sequence, keeping the pieces in its memory;
- baseline: ``Host.prompt`` on the same graph (the same generation loop, no guest and no ABI).

Also printed, not judged: examples/llama_chat.c, which writes every piece to stdout as it comes (WASI fd_write
and fflush per token, through wasmtime's WASI into a Python callback).

Figure: time per token. Target: ours / baseline <= 1.25 (two recorded wasi-nn calls per token against a forward
pass of the model).

    python benchmarks/prompt_tokens.py [--reps 10] [--tokens 128]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import torch
from _common import dump, interleaved, judge, parser, timed

from wasinn_jupyter.guests import compile_source
from wasinn_jupyter.host import Host, Session, WasiOptions
from wasinn_jupyter.host.backends import tinygpt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TARGET = 1.25
PROMPT = "hello"
STREAM_C = r"""
#include <string.h>
#include "wasi_nn.h"
static uint8_t reply[1 << 20];
int main(int argc, char **argv) {
    const char *config = argv[1];
    wasi_nn_graph_t graph;
    wasi_nn_context_t ctx;
    if (wasi_nn_load_by_name_with_config("default", 7, config, strlen(config), &graph)) return 2;
    if (wasi_nn_init_execution_context(graph, &ctx)) return 3;
    uint32_t dims[1] = {1};
    wasi_nn_tensor_t prompt = {dims, 1, WASI_NN_TYPE_U8, (const uint8_t *)"hello", 5};
    if (wasi_nn_set_input(ctx, 0, &prompt)) return 4;
    uint32_t at = 0, written = 0;
    wasi_nn_errno_t err;
    while (!(err = wasi_nn_compute_single(ctx))) {
        if (wasi_nn_get_output_single(ctx, 0, reply + at, sizeof reply - at, &written)) return 5;
        at += written;
    }
    wasi_nn_fini_single(ctx);
    return err == WASI_NN_ERRNO_END_OF_SEQUENCE && at ? 0 : 6;
}
"""


def main() -> int:
    p = parser(__doc__.splitlines()[0], reps=10)
    p.add_argument("--tokens", type=int, default=128, help="tokens per reply (default 128)")
    args = p.parse_args()
    n = args.tokens
    model = tinygpt.build(tinygpt.TinyGPTConfig(n_embd=64, n_layer=2, n_head=2, block_size=n + len(PROMPT) + 1))
    with torch.no_grad():
        model.wte.weight.zero_()
    with tempfile.TemporaryDirectory() as tmp:
        directory = tinygpt.save(model, Path(tmp) / "lm")
        host = Host()
        host.register("default", str(directory), "ggml")
        # one torch thread on both sides: on this 2-core machine, shared with other work, torch's spinning
        # intra-op threads made the main thread (the Python side) up to 30x slower than a guest's thread
        host.set_property("default", "threads", "1")
        session = Session(host)
        stream = session.compile(compile_source(STREAM_C, "c", name="prompt_stream").wasm)
        chat = session.compile(compile_source((EXAMPLES / "llama_chat.c").read_text(), "c", name="llama_chat").wasm)
        config = f'{{"temp": 0, "n-predict": {n}}}'
        chat_env = {"template": "raw", "temp": "0", "n_predict": str(n)}

        def run(module: object, argv: list[str], env: dict[str, str]) -> bytes:
            out: list[bytes] = []
            guest = session.instantiate(module, wasi=WasiOptions(argv=argv, env=env, stdout=out.append))
            try:
                code = guest.run(watch=False)  # on this thread, as the other benchmarks call guests
            finally:
                guest.close()
            if code != 0:
                raise SystemExit(f"the guest exited with {code}: {b''.join(out).decode(errors='replace')}")
            return b"".join(out)

        def guest_reply() -> bytes:
            return run(stream, ["prompt_stream", config], {})

        def chat_reply() -> bytes:
            return run(chat, ["llama_chat", "default", PROMPT], chat_env)

        def python_reply() -> str:
            return host.prompt("default", PROMPT, options={"temp": 0, "n-predict": n})

        guest_reply()
        singles = [r for r in host.timeline.records() if r.call == "compute_single" and r.outcome == "ok"]
        streamed = chat_reply()
        direct = python_reply()
        same = f"[BOT]:{direct}\n".encode() in streamed and len(direct) == n and len(singles) == n
        print(f"(g) tokens per second, a {n}-token reply from the small GPT (64 wide, 2 layers), {args.reps} reps")
        print(f"  check     the guest streamed the same {n} tokens Host.prompt returns: {same}")
        if not same:
            raise SystemExit("the guest's reply differs from Host.prompt's")
        s_guest, s_python, s_chat = interleaved(
            [lambda: timed(guest_reply, n), lambda: timed(python_reply, n), lambda: timed(chat_reply, n)],
            args.reps,
            warmup=1,
        )
        result = judge(
            "prompt_tokens",
            "guest: compute_single + get_output_single (per token)",
            s_guest,
            "Host.prompt from Python (per token)",
            s_python,
            unit="us",
            target=TARGET,
            higher_is_better=False,
            ratio_meaning="ours / Python (time per token)",
        )
        print(f"  info      guest {1 / result.ours_s:.0f} tokens/s, Python {1 / result.base_s:.0f} tokens/s")
        chat_s = statistics.median(s_chat)
        per = f"{chat_s * 1e6:.1f} µs per token ({1 / chat_s:.0f} tokens/s)"
        print(f"  info      llama_chat.c, printing each piece: {per}")
        result.notes.append(f"guest {1 / result.ours_s:.0f} tokens/s, Python {1 / result.base_s:.0f} tokens/s")
        result.notes.append(f"llama_chat.c printing each piece: {1 / chat_s:.0f} tokens/s (not judged)")
        session.close()
    dump([result], args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
