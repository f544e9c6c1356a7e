"""A LlamaEdge-style chat guest (examples/llama_chat.c, C through zig) against a prompt graph, end to end through
``wasinn run --nn-preload default:GGML:AUTO:DIR``, as WasmEdge's GGML plugin runs it: streaming, token counts
before and after, the reset on a full context or a long prompt, and hostile settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wasinn_jupyter.cli import main
from wasinn_jupyter.guests import Compiled
from wasinn_jupyter.host import GuestLimits, GuestStopped, Host, Session, WasiOptions

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


@pytest.fixture
def chat_wasm(build: Callable[..., Compiled], need_toolchain: Callable[[str], None], tmp_path: Path) -> Path:
    need_toolchain("c")
    compiled = build((EXAMPLES / "llama_chat.c").read_text(), "c", name="llama_chat")
    path = tmp_path / "llama_chat.wasm"
    path.write_bytes(compiled.wasm)
    return path


def run(
    capfd: pytest.CaptureFixture[str],
    model: Path,
    wasm: Path,
    *args: str,
    env: dict[str, str],
    flags: tuple[str, ...] = (),
) -> tuple[int, str]:
    envs = [part for key, value in env.items() for part in ("--env", f"{key}={value}")]
    code = main(["run", "--nn-preload", f"default:GGML:AUTO:{model}", *flags, *envs, str(wasm), "default", *args])
    out, err = capfd.readouterr()
    return code, out + err


def test_a_llamaedge_guest_streams_its_reply(tiny_lm_dir: Path, chat_wasm: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    env = {"template": "raw", "temp": "0", "n_predict": "14"}
    code, out = run(capfd, tiny_lm_dir, chat_wasm, "the cat s", env=env, flags=("--timeline",))
    assert code == 0, out
    assert "[BOT]:at on the mat.\n" in out
    assert out.count("[INFO] Number of input tokens: 9") == 2  # read from output 1 before any compute, and after
    assert "[INFO] Number of output tokens: 14" in out
    assert '[INFO] Config: {"n-predict": 14, "temp": 0}' in out
    assert "prompt graphs: 14 tokens in " in out and " tokens/s)" in out  # --timeline's summary


def test_the_reply_arrives_token_by_token(tiny_lm_dir: Path, chat_wasm: Path) -> None:
    host = Host()
    host.register("default", str(tiny_lm_dir), "ggml")
    chunks: list[bytes] = []
    wasi = WasiOptions(
        argv=["llama_chat", "default", "the cat s"], env={"template": "raw", "temp": "0", "n_predict": "5"},
        stdout=chunks.append,
    )  # fmt: skip
    with Session(host) as session:
        assert session.run(chat_wasm.read_bytes(), wasi=wasi) == 0
    assert b"".join(chunks).count(b"[BOT]:at on\n") == 1
    bot = next(i for i, c in enumerate(chunks) if c.endswith(b"[BOT]:"))
    assert chunks[bot + 1 : bot + 6] == [b"a", b"t", b" ", b"o", b"n"]  # written one by one, as they came
    singles = [r for r in host.timeline.records() if r.call == "compute_single"]
    assert [r.tokens for r in singles] == [1, 1, 1, 1, 1, 0]
    assert singles[-1].outcome == "end-of-sequence" and singles[0].graph == "default"


def test_a_full_context_and_a_long_prompt_reset_the_chat(tiny_lm_dir: Path, chat_wasm: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    code, out = run(
        capfd, tiny_lm_dir, chat_wasm, "the cat s", "x" * 40,
        env={"template": "raw", "temp": "0", "ctx_size": "12", "n_predict": "-1"},
    )  # fmt: skip
    assert code == 0, out
    # 9 prompt tokens and 3 of the reply fill 12 positions
    assert "[BOT]:at \n[INFO] Context full, we'll reset the context and continue.\n" in out
    assert "[BOT]:\n[INFO] Prompt too long, we'll reset the context and continue.\n" in out


def test_a_chat_keeps_its_history_until_it_no_longer_fits(tiny_lm_dir: Path, chat_wasm: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    code, out = run(capfd, tiny_lm_dir, chat_wasm, "hi", "cat", env={"temp": "0", "n_predict": "2", "ctx_size": "32"})
    assert code == 0, out
    assert out.count("[BOT]:") == 2
    assert "[INFO] Number of input tokens: 19" in out  # "User: hi\nAssistant:" is 19 bytes
    assert "[INFO] Number of input tokens: 42\n[INFO] Number of output tokens: 0" in out
    assert "Prompt too long" in out  # the second turn carries the first: past 32 positions, reset as LlamaEdge does


def test_invalid_metadata_is_invalid_argument(tiny_lm_dir: Path, chat_wasm: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    code, out = run(capfd, tiny_lm_dir, chat_wasm, env={"metadata": "{not json"})
    assert code == 0, out
    assert "[INFO] set_input(1, metadata): invalid_argument (1)" in out


def test_a_huge_n_predict_ends_at_the_guests_budget(tiny_lm_dir: Path, chat_wasm: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    code, out = run(
        capfd, tiny_lm_dir, chat_wasm, "the cat s", env={"template": "raw", "n_predict": "1000000000"},
        flags=("--max-guest-bytes", "4096"),
    )  # fmt: skip
    assert code == 1, out
    assert "[ERROR] compute_single: too_large (7)" in out
    assert "over its budget" in out  # the host's message for the failed call


def test_a_missing_ggml_model_is_model_not_found(tmp_path: Path, chat_wasm: Path, capfd) -> None:  # type: ignore[no-untyped-def]
    code, out = run(capfd, tmp_path / "missing.gguf", chat_wasm, env={})
    assert code == 1
    assert "no model at" in out and "load_by_name_with_config: model_not_found (103)" in out


# A guest that asks for a whole reply in one compute call, as LlamaEdge's non-streaming path does.
C_ONE_COMPUTE = r"""
#include <stdio.h>
#include <string.h>
#include "wasi_nn.h"
int main(void) {
    const char *config = "{\"n-predict\": -1, \"temp\": 0}";
    wasi_nn_graph_t graph;
    wasi_nn_context_t ctx;
    if (wasi_nn_load_by_name_with_config("long", 4, config, strlen(config), &graph)) return 2;
    if (wasi_nn_init_execution_context(graph, &ctx)) return 3;
    uint32_t dims[1] = {1};
    wasi_nn_tensor_t prompt = {dims, 1, WASI_NN_TYPE_U8, (const uint8_t *)"hello", 5};
    if (wasi_nn_set_input(ctx, 0, &prompt)) return 4;
    printf("computing\n");
    fflush(stdout);
    printf("compute: %s\n", wasi_nn_errno_name(wasi_nn_compute(ctx)));
    return 0;
}
"""


def test_a_deadline_cuts_a_long_reply_short(
    build: Callable[..., Compiled], need_toolchain: Callable[[str], None], tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    """One compute of 60000 tokens is one host call; the guest's deadline stops it between tokens."""
    import torch

    from wasinn_jupyter.host.backends import tinygpt

    need_toolchain("c")
    model = tinygpt.build(tinygpt.TinyGPTConfig(n_embd=16, n_layer=1, n_head=1, block_size=60000))
    with torch.no_grad():
        model.wte.weight.zero_()  # every logit 0: greedy picks byte 0 forever, never the end of text
    directory = tinygpt.save(model, tmp_path / "long")
    wasm = build(C_ONE_COMPUTE, "c", name="one_compute").wasm
    host = Host()
    host.register("long", str(directory), "ggml")
    out: list[bytes] = []
    with Session(host) as session, pytest.raises(GuestStopped):
        session.run(wasm, wasi=WasiOptions(stdout=out.append), limits=GuestLimits(deadline_s=2))
    assert b"computing" in b"".join(out)
    # the compute ended between tokens, within the guest's run (a guest abandoned in a host call would have left
    # no record yet), long before the 60000 positions were filled
    computes = [r for r in host.timeline.records() if r.call == "compute"]
    assert len(computes) == 1 and computes[0].outcome == "runtime-error"
    assert host.last_error is not None and "cut short after" in host.last_error and "deadline" in host.last_error
    assert 0 < (computes[0].tokens or 0) < 59000
