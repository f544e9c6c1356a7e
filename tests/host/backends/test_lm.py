"""The language-model backend: the small GPT's format, generation, sampling settings, WasmEdge's GGML convention on
an execution context, the budget, and Hugging Face directories through transformers (skipped without it).

Every model here is built on the fly (random, or trained for about a second on text the tests ship), saved, and
loaded back through the real loading code; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import ErrorCode, Host, WasiNNError
from wasinn_jupyter.host.backends import tinygpt
from wasinn_jupyter.host.backends.lm import U8, PromptContext, PromptGraph
from wasinn_jupyter.host.handles import ByteBudget


def graph_of(host: Host, name: str = "chat") -> PromptGraph:
    graph = host.graph(name)
    assert isinstance(graph, PromptGraph)
    return graph


@pytest.fixture
def chat(tiny_lm_dir: Path) -> Host:
    host = Host()
    host.register("chat", str(tiny_lm_dir))  # autodetect: a model directory with a config.json
    host.set_property("chat", "temperature", "0")
    host.set_property("chat", "threads", "1")  # a model this small gains nothing from more
    return host


def context(host: Host, budget: ByteBudget | None = None, name: str = "chat") -> PromptContext:
    ctx = graph_of(host, name).init_execution_context(budget)
    assert isinstance(ctx, PromptContext)
    return ctx


def set_prompt(ctx: PromptContext, text: bytes) -> None:
    # as WasmEdge's guests send it: dims [1] whatever the length
    ctx.set_input_bytes(0, (1,), U8, np.frombuffer(text, dtype=np.uint8))


def code_of(call) -> ErrorCode:  # type: ignore[no-untyped-def]
    with pytest.raises(WasiNNError) as info:
        call()
    return info.value.code


# -- the small GPT's format --------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = tinygpt.build(tinygpt.TinyGPTConfig(n_embd=16, block_size=16), seed=3)
    loaded = tinygpt.load_dir(tinygpt.save(model, tmp_path / "m"), "cpu", 1 << 30)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert json.loads((tmp_path / "m" / "config.json").read_text())["format"] == "wasinn-tinygpt"


def test_the_cache_gives_what_a_full_forward_gives(tiny_lm_dir: Path) -> None:
    model = tinygpt.load_dir(tiny_lm_dir, "cpu", 1 << 30)
    ids = torch.tensor([list(b"the cat sat on")])
    with torch.no_grad():
        full, _ = model(ids)
        _, past = model(ids[:, :9])
        step, past = model(ids[:, 9:12], past)
        last, _ = model(ids[:, 12:], past)
    assert torch.allclose(full[0, 9:12], step[0], atol=1e-5)
    assert torch.allclose(full[0, 12:], last[0], atol=1e-5)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "config.json").write_text('{"format": "wasinn-tinygpt", "n_layer": 100000}'),
        lambda d: (d / "config.json").write_text('{"format": "wasinn-tinygpt", "n_embd": 30, "n_head": 4}'),
        lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}"),
        lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-10]),
        lambda d: (d / "tokenizer.json").write_text('{"type": "sentencepiece"}'),
    ],
    ids=["huge config", "heads do not divide", "header past the file", "truncated weights", "unknown tokenizer"],
)
def test_a_damaged_directory_is_refused_plainly(tiny_lm_dir: Path, tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    import shutil

    copy = Path(shutil.copytree(tiny_lm_dir, tmp_path / "copy"))
    damage(copy)
    with pytest.raises(WasiNNError) as info:
        Host().register("bad", str(copy))
    assert info.value.code is ErrorCode.INVALID_ENCODING


def test_weights_over_the_model_limit_are_too_large(tiny_lm_dir: Path) -> None:
    from wasinn_jupyter.host import Limits

    host = Host(limits=Limits(max_model_bytes=1000))
    with pytest.raises(WasiNNError) as info:
        host.register("chat", str(tiny_lm_dir), "ggml")
    assert info.value.code is ErrorCode.TOO_LARGE


# -- generation and settings -------------------------------------------------------------------------------------


def test_a_trained_model_says_what_it_learned(chat: Host) -> None:
    pieces: list[str] = []
    reply = chat.prompt("chat", "the cat s", pieces.append, options={"n-predict": 14})
    assert reply == "at on the mat." and "".join(pieces) == reply and len(pieces) == 14  # one byte per token
    record = [r for r in chat.timeline.records() if r.call == "prompt"][-1]
    assert record.tokens == 14 and record.outcome == "ok"


def test_the_same_seed_gives_the_same_reply(chat: Host) -> None:
    options = {"temp": 1.5, "top-k": 0, "top-p": 1.0, "n-predict": 12}
    chat.set_property("chat", "seed", "7")
    first = chat.prompt("chat", "the ", options=options)
    assert chat.prompt("chat", "the ", options=options) == first
    replies = {chat.prompt("chat", "the ", options={**options, "seed": seed}) for seed in range(8)}
    assert len(replies) > 1  # at temperature 1.5 over the whole vocabulary, seeds differ


def test_properties_describe_the_sampling_settings(chat: Host) -> None:
    specs = chat.properties("chat")
    assert list(specs) == [
        "temperature", "top_k", "top_p", "max_new_tokens", "seed", "context_size", "threads", "precision"
    ]  # fmt: skip
    assert specs["temperature"].value == "0" and specs["temperature"].kind == "float"
    assert specs["top_k"].maximum == 257 and specs["context_size"].maximum == 32
    for key, value in [("top_p", "1.5"), ("top_k", "-1"), ("seed", "x"), ("nope", "1"), ("temperature", "nan")]:
        with pytest.raises(WasiNNError) as info:
            chat.set_property("chat", key, value)
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
    chat.set_property("chat", "max_new_tokens", "3")
    assert chat.prompt("chat", "the cat s") == "at "  # a property reaches the next compute


def test_a_reverse_prompt_ends_the_reply(chat: Host) -> None:
    assert chat.prompt("chat", "the cat s", options={"reverse-prompt": "mat"}) == "at on the mat"
    assert chat.prompt("chat", "the cat s", options={"reverse-prompt": "dog", "n-predict": 9}) == "at on the"


def test_precision_is_a_converted_copy_of_the_weights_as_loaded(chat: Host) -> None:
    graph = graph_of(chat)
    options = {"n-predict": 14}
    fp32 = chat.prompt("chat", "the cat s", options=options)
    loaded, held = graph.lm.module, graph.held_bytes()
    assert chat.properties("chat")["precision"].value == "fp32"
    chat.set_property("chat", "precision", "bf16")
    assert next(graph.lm.module.parameters()).dtype == torch.bfloat16 and graph.held_bytes() == held * 3 // 2
    assert len(chat.prompt("chat", "the cat s", options=options)) == 14  # generated in bf16
    ctx = context(chat)  # a reply under way ends on the weights it started with
    set_prompt(ctx, b"the cat s")
    ctx.compute_single()
    chat.set_property("chat", "precision", "fp32")
    assert graph.lm.module is loaded and graph.held_bytes() == held  # back to the very weights, no round trip
    ctx.compute_single()
    assert chat.prompt("chat", "the cat s", options=options) == fp32
    child = graph.configure({})
    assert code_of(lambda: child.set_property("precision", "fp16")) is ErrorCode.INVALID_ARGUMENT
    assert code_of(lambda: graph.set_property("precision", "fp8")) is ErrorCode.INVALID_ARGUMENT


def test_a_configured_graph_keeps_its_settings_to_itself(chat: Host) -> None:
    parent = graph_of(chat)
    child = parent.configure({"n-predict": 2, "temp": 0.5, "n-gpu-layers": 99, "enable-log": True})
    assert child.get_property("max_new_tokens") == "2" and child.get_property("temperature") == "0.5"
    assert parent.get_property("max_new_tokens") == "128"
    parent.set_property("top_k", "5")
    assert child.get_property("top_k") == "5"  # the parent's later changes reach it, under its own
    for bad in [{"ctx-size": "big"}, {"temp": "hot"}, {"n-gpu-layers": 1.5}, {"top-p": 2}]:
        assert code_of(lambda bad=bad: parent.configure(bad)) is ErrorCode.INVALID_ARGUMENT


# -- WasmEdge's GGML convention on an execution context ------------------------------------------------------------


def test_metadata_is_there_from_set_input(chat: Host) -> None:
    ctx = context(chat)
    set_prompt(ctx, b"the cat s")
    meta = json.loads(ctx.get_output(1).raw().tobytes())
    assert meta["input_tokens"] == 9 and meta["output_tokens"] == 0
    ctx.set_input_bytes(1, (1,), U8, np.frombuffer(b'{"n-predict": 4}', dtype=np.uint8))
    ctx.compute()
    assert ctx.get_output(0).raw().tobytes() == b"at o"
    assert json.loads(ctx.get_output(1).raw().tobytes())["output_tokens"] == 4


def test_streaming_gives_the_same_reply_and_ends_with_100(chat: Host) -> None:
    ctx = context(chat)
    set_prompt(ctx, b"the cat s")
    ctx.set_input_bytes(1, (1,), U8, np.frombuffer(b'{"n-predict": 10}', dtype=np.uint8))
    ctx.compute()
    whole = ctx.get_output(0).raw().tobytes()
    pieces = []
    while True:
        try:
            ctx.compute_single()
        except WasiNNError as err:
            assert err.code is ErrorCode.END_OF_SEQUENCE
            break
        pieces.append(ctx.get_output_single(0).raw().tobytes())
    assert b"".join(pieces) == whole and len(pieces) == 10
    assert json.loads(ctx.get_output_single(1).raw().tobytes())["output_tokens"] == 10
    assert code_of(ctx.compute_single) is ErrorCode.END_OF_SEQUENCE  # until fini_single
    ctx.fini_single()
    ctx.compute_single()  # starts over
    assert ctx.get_output_single(0).raw().tobytes() == pieces[0]


def test_a_full_context_is_101_and_a_long_prompt_102(chat: Host) -> None:
    ctx = context(chat)
    set_prompt(ctx, b"the cat s")
    ctx.set_input_bytes(1, (1,), U8, np.frombuffer(b'{"ctx-size": 12, "n-predict": -1}', dtype=np.uint8))
    assert code_of(ctx.compute) is ErrorCode.CONTEXT_FULL
    assert ctx.get_output(0).raw().tobytes() == b"at "  # the reply so far stays readable
    set_prompt(ctx, b"x" * 12)
    assert code_of(ctx.compute) is ErrorCode.PROMPT_TOO_LONG
    assert code_of(ctx.compute_single) is ErrorCode.PROMPT_TOO_LONG
    set_prompt(ctx, b"x" * 40)  # past the model's own 32 positions, with ctx-size unset
    ctx.overrides = {}
    assert code_of(ctx.compute) is ErrorCode.PROMPT_TOO_LONG
    set_prompt(ctx, b"")
    assert code_of(ctx.compute) is ErrorCode.INVALID_ARGUMENT
    set_prompt(ctx, b"x" * (32 * 256 + 1))  # not even tokenized
    assert ctx.prompt_ids == [] and code_of(ctx.compute_single) is ErrorCode.PROMPT_TOO_LONG


@pytest.mark.parametrize(
    "metadata",
    [b"{not json", b"[1, 2]", b'{"n-predict": "many"}', b'{"seed": -5}', b"\xff\xfe", b"[" * 100000],
    ids=["broken", "not an object", "wrong type", "negative seed", "not UTF-8", "deep"],
)
def test_bad_metadata_is_invalid_argument(chat: Host, metadata: bytes) -> None:
    ctx = context(chat)
    code = code_of(lambda: ctx.set_input_bytes(1, (1,), U8, np.frombuffer(metadata, dtype=np.uint8)))
    assert code is ErrorCode.INVALID_ARGUMENT
    assert code_of(lambda: ctx.set_input_bytes(2, (1,), U8, np.zeros(1, np.uint8))) is ErrorCode.INVALID_ARGUMENT


def test_a_huge_n_predict_ends_at_the_budget(chat: Host) -> None:
    budget = ByteBudget(8 * 1024)  # the cache grows 256 bytes a token here
    ctx = context(chat, budget)
    set_prompt(ctx, b"the cat s")
    ctx.set_input_bytes(1, (1,), U8, np.frombuffer(b'{"n-predict": 1000000000}', dtype=np.uint8))
    assert code_of(ctx.compute) is ErrorCode.TOO_LARGE
    ctx.close()
    assert budget.used == 0  # the cache was refunded


def test_the_budget_is_refunded_after_each_reply(chat: Host) -> None:
    budget = ByteBudget(1 << 20)
    ctx = context(chat, budget)
    set_prompt(ctx, b"the cat s")
    held = budget.used
    ctx.compute_single()
    assert budget.used > held  # the cache
    ctx.fini_single()
    assert budget.used == held
    ctx.close()
    assert budget.used == 0


def test_compute_named_and_the_plain_run(chat: Host) -> None:
    from wasinn_jupyter.host import Tensor

    prompt = Tensor.from_value(np.frombuffer(b"the cat s", dtype=np.uint8))
    meta = Tensor.from_value(np.frombuffer(b'{"n-predict": 3}', dtype=np.uint8))
    outputs = context(chat).compute_named({"prompt": prompt, "metadata": meta})
    assert list(outputs) == ["text", "metadata"] and outputs["text"].raw().tobytes() == b"at "
    assert graph_of(chat).run([prompt, meta])["text"].raw().tobytes() == b"at "


def test_other_graphs_do_not_stream(host: Host) -> None:
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("echo"))
        for call in (lambda: client.compute_single(ctx), lambda: client.fini_single(ctx)):
            assert code_of(call) is ErrorCode.UNSUPPORTED_OPERATION
        assert code_of(lambda: client.prompt(ctx, "hello")) is ErrorCode.UNSUPPORTED_OPERATION


def test_a_live_model_registers_too(tiny_lm_dir: Path) -> None:
    host = Host()
    host.register("live", tinygpt.load_dir(tiny_lm_dir, "cpu", 1 << 30))
    assert host.graphs()["live"].kind == "language model (tinygpt)"
    assert host.prompt("live", "the cat s", options={"temp": 0, "n-predict": 3}) == "at "


def test_client_streaming_is_recorded_with_tokens(chat: Host) -> None:
    with chat.client("streamer") as client:
        ctx = client.init_execution_context(client.load_by_name("chat", '{"n-predict": 2}'))
        client.set_input_bytes(ctx, 0, (1,), U8, np.frombuffer(b"the cat s", dtype=np.uint8))
        client.compute_single(ctx)
        client.compute_single(ctx)
        assert code_of(lambda: client.compute_single(ctx)) is ErrorCode.END_OF_SEQUENCE
        assert client.get_output_single(ctx, 0).raw().tobytes() == b""
    singles = [r for r in chat.timeline.records() if r.call == "compute_single"]
    assert [r.tokens for r in singles] == [1, 1, 0] and singles[-1].outcome == "end-of-sequence"


# -- Hugging Face directories ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2, randomly initialised, with a byte-level BPE tokenizer trained here: save_pretrained, no hub."""
    pytest.importorskip("transformers", reason="the [lm] extra (transformers) is not installed")
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([LM_TEXT.decode()] * 4, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    eos = tokenizer.eos_token_id
    # 1024 positions, GPT-2's own: transformers reads a GGUF gpt2 model back with that many
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, eos_token_id=eos, bos_token_id=eos)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hf-gpt2")
    GPT2LMHeadModel(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


LM_TEXT = b"the cat sat on the mat. "


def test_a_hugging_face_directory_answers_prompts(hf_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    host = Host()
    info = host.register("hf", str(hf_dir), "ggml")
    assert info.kind == "language model (transformers GPT2LMHeadModel)" and info.parameters
    pieces: list[str] = []
    reply = host.prompt("hf", "the cat", pieces.append, options={"temp": 0, "n-predict": 6})
    assert "".join(pieces) == reply
    # greedy decoding by transformers itself gives the same tokens (no eos in between for this seed)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    ids = tokenizer("the cat", return_tensors="pt")["input_ids"]
    expected = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    new = expected[0, ids.shape[1] :].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    assert reply == tokenizer.decode(new, skip_special_tokens=True).rstrip("\ufffd")
    assert host.properties("hf")["context_size"].maximum == 1024


def test_pickled_weights_are_never_loaded(hf_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(hf_dir, tmp_path / "pickled"))
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(WasiNNError) as info:
        Host().register("hf", str(copy), "ggml")
    assert info.value.code is ErrorCode.INVALID_ENCODING and "pickle" in info.value.message


def test_the_readme_snippet_runs_as_printed(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    section = text[text.index("\n## Prompt graphs") :]
    section = section[: section.index("\n## ", 1)]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.S)
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["at on the mat.", "'at on the mat.' 14"]


# -- GGUF files ------------------------------------------------------------------------------------------------


def write_gguf(hf_dir: Path, path: Path) -> Path:
    """The tiny GPT-2 as a GGUF file, written the way llama.cpp's converter lays out a gpt2 model (tensor names from
    gguf's own map, Conv1D weights transposed, the BPE vocabulary and merges)."""
    gguf = pytest.importorskip("gguf", reason="the [lm] extra (gguf) is not installed")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    config = model.config
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_feed_forward_length(4 * config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_head_count(config.n_head)
    writer.add_layer_norm_eps(config.layer_norm_epsilon)
    writer.add_file_type(0)
    vocab = tokenizer.backend_tokenizer.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda item: item[1])]
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    control, normal = gguf.TokenType.CONTROL, gguf.TokenType.NORMAL
    writer.add_token_types([control if t == "<|endoftext|>" else normal for t in tokens])
    writer.add_bos_token_id(tokenizer.eos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, config.n_layer)
    for name, tensor in model.state_dict().items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # buffers, not weights
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert mapped is not None, name
        array = tensor.detach().float().numpy()
        if mapped.endswith(("attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight")):
            array = array.T
        writer.add_tensor(mapped, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_file_answers_as_its_source_does(hf_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("accelerate", reason="transformers reads GGUF files only with accelerate ([lm] extra)")
    gguf_file = write_gguf(hf_dir, tmp_path / "tiny.gguf")
    host = Host()
    info = host.register("from-gguf", str(gguf_file), "ggml")
    host.register("from-dir", str(hf_dir), "ggml")
    assert info.kind == "language model (transformers GPT2LMHeadModel)" and info.source == str(gguf_file)
    options = {"temp": 0, "n-predict": 8}
    reply = host.prompt("from-gguf", "the cat sat", options=options)
    assert reply and reply == host.prompt("from-dir", "the cat sat", options=options)
    with pytest.raises(WasiNNError) as refused:
        Host().register("bad", str(tmp_path / "missing.gguf"), "ggml")
    assert refused.value.code is ErrorCode.NOT_FOUND


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_prompt_graph_on_the_gpu_says_what_it_says_on_the_cpu(tiny_lm_dir: Path) -> None:
    host = Host()
    host.register("cpu", str(tiny_lm_dir), "ggml")
    host.register("gpu", str(tiny_lm_dir), "ggml", target="gpu")
    assert graph_of(host, "gpu").device.startswith("cuda")
    options = {"temp": 0, "n-predict": 14}
    assert host.prompt("gpu", "the cat s", options=options) == host.prompt("cpu", "the cat s", options=options)
    with host.client() as client:  # a guest's budget is charged the cache on the GPU too, and refunded
        ctx = client.init_execution_context(client.load_by_name("gpu"))
        client.set_input_bytes(ctx, 0, (1,), U8, np.frombuffer(b"the cat s", dtype=np.uint8))
        held = client.budget.used
        client.compute_single(ctx)
        assert client.budget.used > held
        client.fini_single(ctx)
        assert client.budget.used == held
