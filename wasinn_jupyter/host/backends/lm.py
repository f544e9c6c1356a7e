"""The language-model backend: prompt graphs (a string in, a string out, wasi-nn PR 79) on a causal LM in PyTorch.

What it loads (never from a guest's bytes, never by unpickling):

- a directory in the package's own small-GPT format (:mod:`.tinygpt`), which needs nothing but torch;
- a Hugging Face causal LM directory (``config.json``, ``*.safetensors``, a tokenizer) when ``transformers`` is
  installed (``pip install 'wasinn-jupyter[lm]'``), with ``trust_remote_code`` off and local files only;
- a ``.gguf`` file, through transformers, where the ``gguf`` package is installed too.

Core guests see WasmEdge's GGML convention (its LlamaEdge guests run unchanged): input 0 is the prompt's bytes
(whatever its dims say), input 1 a metadata JSON object of settings; output 0 is the text, output 1
``{"input_tokens": N, "output_tokens": M, ...}``, readable from right after ``set_input``. ``compute`` generates
the whole reply; ``compute_single`` one token per call, read with ``get_output_single``, ending with
``end_of_sequence`` (100: the model ended, n-predict was reached or the reverse prompt seen) or ``context_full``
(101), and ``fini_single`` resets. A prompt that leaves no room in the context is ``prompt_too_long`` (102).

Settings come from four layers, the later winning: the defaults, the graph's properties (``temperature``,
``top_k``, ``top_p``, ``max_new_tokens``, ``seed``, ``context_size``; set from Python or a widget, shared by all
guests of a registered graph), the JSON config of ``load_by_name_with_config`` (that guest's graph only), and the
metadata at input 1 (that context only). The key/value cache is charged to the guest's memory budget token by
token, so a huge ``n-predict`` ends at the budget, the context size or the model's positions, whichever is first.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ErrorCode, WasiNNError, fail
from ..handles import ByteBudget
from ..tensors import BY_NAME, Tensor, TensorType
from . import base
from .base import (
    Backend,
    ExecutionContext,
    Graph,
    GraphInfo,
    ParameterInfo,
    PropertySpec,
    TensorInfo,
    model_error,
    out_of_host_memory,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

U8: TensorType = BY_NAME["u8"]
INPUT_NAMES = ["prompt", "metadata"]
OUTPUT_NAMES = ["text", "metadata"]
PROMPT_ABILITIES = frozenset({"prompt", "streaming", "properties"})
MAX_METADATA = 1 << 20
# A prompt of more bytes than this per position of the model cannot fit its context under any tokenizer we know;
# it is not tokenized (a hostile guest's gigabyte prompt would cost the host many times that as token lists).
MAX_BYTES_PER_POSITION = 256
INSTALL_HINT = "pip install 'wasinn-jupyter[lm]'"

# ---------------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Settings:
    """How one prompt is answered. ``max_new_tokens`` -1 and ``seed`` -1 mean "until the context is full" and
    "a fresh random seed each time"; ``context_size`` 0 means the model's own maximum."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    max_new_tokens: int = 128
    seed: int = -1
    context_size: int = 0
    threads: int = 0
    reverse_prompt: str = ""


_DOCS = {
    "temperature": "sampling temperature; 0 picks the most likely token every time",
    "top_k": "sample among the k most likely tokens (0: all)",
    "top_p": "sample among the most likely tokens whose probabilities add up to p (1: all)",
    "max_new_tokens": "tokens a reply may have at most (-1: until the context is full)",
    "seed": "random seed of the sampler: the same seed, prompt and settings give the same reply (-1: random)",
    "context_size": "positions the prompt and the reply share (0: the model's maximum)",
    "threads": "torch intra-op threads while this graph generates (0: the process-wide setting)",
    "precision": "the weights' floating type (a converted copy; the weights as loaded are kept for going back)",
}
PRECISIONS = {name: base.PRECISIONS[name] for name in ("fp32", "fp16", "bf16")}  # what a reply is generated in
PROPERTY_NAMES = tuple(_DOCS)

# WasmEdge's GGML keys (config of load_by_name_with_config, metadata at input 1) -> (setting, type)
_WASMEDGE_KEYS: dict[str, tuple[str, type]] = {
    "temp": ("temperature", float),
    "top-k": ("top_k", int),
    "top-p": ("top_p", float),
    "n-predict": ("max_new_tokens", int),
    "seed": ("seed", int),
    "ctx-size": ("context_size", int),
    "reverse-prompt": ("reverse_prompt", str),
}
# Keys WasmEdge's GGML plugin reads that mean nothing here: type-checked as it does, then noted in the log.
_IGNORED_KEYS: dict[str, type] = {
    "enable-log": bool, "enable-debug-log": bool, "stream-stdout": bool, "embedding": bool, "use-mmap": bool,
    "warmup": bool, "n-gpu-layers": int, "main-gpu": int, "batch-size": int, "ubatch-size": int, "threads": int,
    "repeat-penalty": float, "presence-penalty": float, "frequency-penalty": float, "split-mode": str,
    "tensor-split": str, "mmproj": str, "image": str, "grammar": str, "json-schema": str,
    "always-regenerate-image-embd": bool,
}  # fmt: skip


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        if not -(2**63) <= value < 2**63:  # torch's seed, and the properties' bounds, are 64-bit
            fail(ErrorCode.INVALID_ARGUMENT, f"metadata key {key!r}: {value} does not fit 64 bits")
        return value
    if kind in (bool, str) and isinstance(value, kind):
        return value
    fail(ErrorCode.INVALID_ARGUMENT, f"metadata key {key!r} must be {kind.__name__}, got {json.dumps(value)[:60]}")


def parse_wasmedge_options(text: str | bytes | dict[str, Any], what: str) -> dict[str, Any]:
    """Settings from WasmEdge's JSON (a config or the metadata at input 1); invalid_argument for bad JSON or types."""
    if isinstance(text, dict):
        data: Any = text
    else:
        try:
            data = json.loads(text) if text.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            fail(ErrorCode.INVALID_ARGUMENT, f"{what} is not JSON: {exc}")
        except RecursionError:
            fail(ErrorCode.INVALID_ARGUMENT, f"{what} is nested too deeply")
    if not isinstance(data, dict):
        fail(ErrorCode.INVALID_ARGUMENT, f"{what} must be a JSON object")
    out: dict[str, Any] = {}
    unused = []
    for key, value in data.items():
        if key in _WASMEDGE_KEYS:
            name, kind = _WASMEDGE_KEYS[key]
            typed = _typed(key, value, kind)
            if name == "temperature":
                typed = max(0.0, typed)  # as WasmEdge does
            elif (name in ("top_k", "context_size") and typed < 0) or (name == "seed" and typed < -1):
                fail(ErrorCode.INVALID_ARGUMENT, f"metadata key {key!r} must not be negative (seed: -1 is random)")
            elif name == "top_p" and not 0.0 <= typed <= 1.0:
                fail(ErrorCode.INVALID_ARGUMENT, f"metadata key 'top-p' must lie in [0, 1], got {typed}")
            elif name == "max_new_tokens" and typed < 0:
                typed = -1  # llama.cpp's -1: until the context is full
            out[name] = typed
        elif key in _IGNORED_KEYS:
            _typed(key, value, _IGNORED_KEYS[key])
            unused.append(key)
        else:
            unused.append(key)
    if unused:
        log.info("%s: keys %s have no effect on this host's language models", what, sorted(unused))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Models: the part that differs between the small GPT and transformers


class CausalLM(ABC):
    """A tokenizer and a model with a key/value cache, as prompt graphs use them."""

    kind: str
    source: str
    device: str
    eos: frozenset[int]
    max_positions: int
    vocab_size: int
    module: Any
    _loaded: Any = None  # the module as loaded, once another precision is in use

    @property
    def precision(self) -> str:
        dtype = str(next(self.module.parameters()).dtype).removeprefix("torch.")
        return next((name for name, full in PRECISIONS.items() if full == dtype), dtype)

    def set_precision(self, precision: str) -> None:
        """Generate in ``precision`` from the next reply on: a converted copy of the weights as loaded (never a
        round trip through a narrower type); replies under way finish on the module they started with."""
        import torch

        loaded = self._loaded if self._loaded is not None else self.module
        dtype = getattr(torch, PRECISIONS[precision])
        self._loaded = loaded
        self.module = loaded if next(loaded.parameters()).dtype == dtype else copy.deepcopy(loaded).to(dtype)

    @abstractmethod
    def encode(self, text: bytes) -> list[int]: ...

    @abstractmethod
    def decode_step(self, ids: Sequence[int], offsets: tuple[int, int]) -> tuple[bytes, tuple[int, int]]:
        """The bytes the last of the reply's tokens ``ids`` adds to the reply, and the offsets to pass next time
        (start at (0, 0)). Each call costs a few tokens' decoding, not the whole reply's; a character whose bytes
        are not all there yet may wait for a later token."""

    @abstractmethod
    def forward(self, ids: list[int], past: Any, module: Any) -> tuple[torch.Tensor, Any]:
        """Logits of ``module`` (this model's, in some precision) after the last of ``ids`` (fed after ``past``),
        and the grown cache."""

    @abstractmethod
    def kv_bytes_per_token(self) -> int: ...


class TinyLM(CausalLM):
    def __init__(self, module: Any, source: str, device: str) -> None:
        from .tinygpt import ByteTokenizer

        self.module = module
        self.tokenizer = ByteTokenizer()
        self.kind = "tinygpt"
        self.source = source
        self.device = device
        config = module.config
        self.eos = frozenset({config.eos_token_id})
        self.max_positions = config.block_size
        self.vocab_size = config.vocab_size

    def encode(self, text: bytes) -> list[int]:
        return self.tokenizer.encode(text)

    def decode_step(self, ids: Sequence[int], offsets: tuple[int, int]) -> tuple[bytes, tuple[int, int]]:
        return self.tokenizer.decode(ids[-1:]), offsets  # raw bytes, as llama.cpp's pieces are

    def forward(self, ids: list[int], past: Any, module: Any) -> tuple[torch.Tensor, Any]:
        import torch

        logits, cache = module(torch.tensor([ids], device=self.device), past)
        return logits[0, -1], cache

    def kv_bytes_per_token(self) -> int:
        return int(self.module.kv_bytes_per_token())


class HuggingFaceLM(CausalLM):
    def __init__(self, module: Any, tokenizer: Any, source: str, device: str) -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.source = source
        self.device = device
        config = module.config
        self.kind = f"transformers {type(module).__name__}"
        eos: set[int] = set()
        ends = (getattr(tokenizer, "eos_token_id", None), getattr(module.generation_config, "eos_token_id", None))
        for value in ends:
            eos.update([value] if isinstance(value, int) else list(value or []))
        self.eos = frozenset(eos)
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.max_positions = int(positions or 2048)
        self.vocab_size = int(config.vocab_size)
        try:  # transformers 5 names the cache argument `cache`; 4.x `past_key_values`
            self._cache_arg = "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
        except (TypeError, ValueError):
            self._cache_arg = "past_key_values"

    def encode(self, text: bytes) -> list[int]:
        return list(self.tokenizer(text.decode("utf-8", "replace"), add_special_tokens=True)["input_ids"])

    def decode_step(self, ids: Sequence[int], offsets: tuple[int, int]) -> tuple[bytes, tuple[int, int]]:
        # text-generation-inference's way: decode a short window twice, with and without the new tokens, so that
        # a tokenizer that joins tokens (SentencePiece's spaces, byte-level pieces of one character) is respected
        prefix, read = offsets
        before: str = self.tokenizer.decode(list(ids[prefix:read]), skip_special_tokens=True)
        after: str = self.tokenizer.decode(list(ids[prefix:]), skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            return after[len(before) :].encode("utf-8"), (read, len(ids))
        return b"", offsets

    def forward(self, ids: list[int], past: Any, module: Any) -> tuple[torch.Tensor, Any]:
        import torch

        ids_tensor = torch.tensor([ids], device=self.device)
        out = module(input_ids=ids_tensor, use_cache=True, **{self._cache_arg: past})
        return out.logits[0, -1], out[self._cache_arg] if self._cache_arg in out else out.past_key_values

    def kv_bytes_per_token(self) -> int:
        config = self.module.config
        layers = int(getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None) or 1)
        hidden = int(getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or 0)
        heads = int(getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None) or 1)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or hidden // max(1, heads))
        itemsize = next(self.module.parameters()).element_size()
        return int(2 * layers * kv_heads * head_dim * itemsize)


# ---------------------------------------------------------------------------------------------------------------
# Generation


TOKEN_BYTES = 36  # what a prompt's token id costs the host kept in a Python list: a slot and an int object


def sample(logits: torch.Tensor, settings: Settings, generator: torch.Generator) -> int:
    """One token from ``logits`` under ``settings`` (greedy at temperature 0), drawn with ``generator``."""
    import torch

    scores = logits.detach().float().cpu()
    if settings.temperature <= 0:
        return int(scores.argmax())
    scores = scores / settings.temperature
    if not bool(torch.isfinite(scores.max())):  # a temperature so small that the scores overflow: greedy, as at 0
        return int(logits.detach().float().cpu().argmax())
    if 0 < settings.top_k < scores.numel():
        kth = torch.topk(scores, settings.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if settings.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(ordered, dim=-1)
        drop = cumulative - ordered > settings.top_p  # keep the smallest head reaching top_p, never nothing
        probs = probs.scatter(0, order, ordered.masked_fill(drop, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))


class Generation:
    """One prompt's reply, a token per :meth:`step`: the prompt is evaluated at the first step, then each new token
    is fed through the key/value cache. Its cache is charged to ``budget`` as it grows."""

    def __init__(self, lm: CausalLM, prompt: list[int], settings: Settings, budget: ByteBudget) -> None:
        import torch

        if not prompt:
            fail(ErrorCode.INVALID_ARGUMENT, "the prompt is empty: set input 0 to the prompt's bytes first")
        limit = lm.max_positions
        self.context = min(settings.context_size, limit) if settings.context_size > 0 else limit
        if len(prompt) >= self.context:
            fail(
                ErrorCode.PROMPT_TOO_LONG,
                f"the prompt is {len(prompt)} tokens; the context holds {self.context} with the reply "
                f"(model maximum {limit}): shorten the prompt or raise ctx-size",
            )
        self.lm = lm
        self.settings = settings
        self.budget = budget
        self.prompt = prompt
        self.ids: list[int] = []
        self.text = b""  # the reply so far
        self._offsets = (0, 0)
        self._pending = list(prompt)
        self._past: Any = None
        self._charged = 0
        self._ended: WasiNNError | None = None
        self._module = lm.module  # the reply ends on the weights it started with, whatever precision is set meanwhile
        self._kv = lm.kv_bytes_per_token()
        self.generator = torch.Generator()
        if settings.seed >= 0:
            self.generator.manual_seed(settings.seed)
        else:
            self.generator.seed()

    @property
    def ended(self) -> bool:
        return self._ended is not None

    def step(self) -> int:
        """The next token; raises end_of_sequence or context_full (again on every later call) when there is none."""
        if self._ended is not None:
            raise self._ended
        limit = self.settings.max_new_tokens
        if 0 <= limit <= len(self.ids):
            self._end(ErrorCode.END_OF_SEQUENCE, f"n-predict ({limit} tokens) reached")
        if len(self.prompt) + len(self.ids) >= self.context:
            self._end(ErrorCode.CONTEXT_FULL, f"the context is full ({self.context} tokens); raise ctx-size")
        import torch

        cost = len(self._pending) * self._kv
        self.budget.charge(cost)  # too_large past the guest's budget, before the cache grows
        self._charged += cost
        threads, before = self.settings.threads, torch.get_num_threads()
        if threads and threads != before:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                logits, self._past = self.lm.forward(self._pending, self._past, self._module)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise
        finally:
            if threads and threads != before:
                torch.set_num_threads(before)
        token = sample(logits, self.settings, self.generator)
        if token in self.lm.eos:
            self._end(ErrorCode.END_OF_SEQUENCE, "the model ended its reply")
        self.ids.append(token)
        self._pending = [token]
        piece, self._offsets = self.lm.decode_step(self.ids, self._offsets)
        self.text += piece
        reverse = self.settings.reverse_prompt.encode()
        if reverse and piece and reverse in self.text[-(len(reverse) + len(piece)) :]:
            self._ended = WasiNNError(ErrorCode.END_OF_SEQUENCE, "the reverse prompt was produced")
        return token

    def _end(self, code: ErrorCode, why: str) -> None:
        self._ended = WasiNNError(code, why)
        self.release()
        raise self._ended

    def release(self) -> None:
        """Drop the cache and refund it (idempotent)."""
        self._past = None
        self.budget.charge(-self._charged)
        self._charged = 0


def _bytes_tensor(data: bytes) -> Tensor:
    return Tensor((len(data),), U8, np.frombuffer(data, dtype=np.uint8).copy())


# ---------------------------------------------------------------------------------------------------------------
# Graph and context


class PromptGraph(Graph):
    """A causal LM as a wasi-nn graph. A configured graph (``load_by_name_with_config``) shares its parent's model
    and reads its parent's settings at each compute, with its own on top."""

    abilities = PROMPT_ABILITIES

    def __init__(self, name: str, lm: CausalLM, parent: PromptGraph | None = None) -> None:
        self.name = name
        self.lm = lm
        self.device = lm.device
        self.parent = parent
        self._own: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- settings and properties ---------------------------------------------------------------------------

    def settings(self, overrides: dict[str, Any] | None = None) -> Settings:
        base = self.parent.settings() if self.parent is not None else Settings()
        merged = replace(base, **self._own)
        return replace(merged, **overrides) if overrides else merged

    def configure(self, config: dict[str, Any]) -> Graph:
        child = PromptGraph(self.name, self.lm, parent=self)
        child._own = parse_wasmedge_options(config, "load_by_name_with_config config")
        return child

    def describe_properties(self) -> dict[str, PropertySpec]:
        s = self.settings()
        top = float(self.lm.max_positions)
        specs = [
            PropertySpec("temperature", _fmt(s.temperature), "float", minimum=0.0, maximum=100.0),
            PropertySpec("top_k", str(s.top_k), "int", minimum=0, maximum=float(self.lm.vocab_size)),
            PropertySpec("top_p", _fmt(s.top_p), "float", minimum=0.0, maximum=1.0),
            PropertySpec("max_new_tokens", str(s.max_new_tokens), "int", minimum=-1, maximum=top),
            PropertySpec("seed", str(s.seed), "int", minimum=-1, maximum=float(2**63 - 1)),
            PropertySpec("context_size", str(s.context_size), "int", minimum=0, maximum=top),
            PropertySpec("threads", str(s.threads), "int", minimum=0, maximum=float(os.cpu_count() or 1)),
            PropertySpec("precision", self.lm.precision, "choice", choices=tuple(PRECISIONS)),
        ]
        return {spec.name: replace(spec, doc=_DOCS[spec.name]) for spec in specs}

    def set_property(self, name: str, value: str) -> None:
        parsed = self.property_spec(name).parse(value)
        if name == "precision":
            if self.parent is not None:
                fail(
                    ErrorCode.INVALID_ARGUMENT,
                    f"precision changes the weights every user of graph {self.name!r} shares: set it on the "
                    "registered graph (Host.set_property)",
                )
            with self._lock:
                self.lm.set_precision(str(parsed))
            return
        kind = {f.name: f.type for f in fields(Settings)}[name]
        with self._lock:
            self._own = {**self._own, name: float(parsed) if kind == "float" else parsed}

    # -- what every graph answers ----------------------------------------------------------------------------

    def input_names(self) -> list[str]:
        return INPUT_NAMES

    def held_bytes(self) -> int:
        if self.parent is not None:
            return 0  # the parent's weights
        modules = {id(m): m for m in (self.lm.module, self.lm._loaded) if m is not None}.values()
        tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
        return sum(int(t.numel()) * t.element_size() for t in tensors)

    def named_tensors(self) -> list[ParameterInfo]:
        module = self.lm.module
        out = [
            ParameterInfo(n, "parameter", tuple(p.shape), str(p.dtype).removeprefix("torch."), str(p.device),
                          int(p.numel()))
            for n, p in module.named_parameters()
        ]  # fmt: skip
        out += [
            ParameterInfo(n, "buffer", tuple(b.shape), str(b.dtype).removeprefix("torch."), str(b.device),
                          int(b.numel()))
            for n, b in module.named_buffers()
        ]  # fmt: skip
        return out

    def info(self) -> GraphInfo:
        params = list(self.lm.module.parameters())
        return GraphInfo(
            name=self.name,
            kind=f"language model ({self.lm.kind})",
            device=self.device,
            inputs=[TensorInfo("prompt", "u8", [None]), TensorInfo("metadata", "u8", [None])],
            outputs=[TensorInfo("text", "u8", [None]), TensorInfo("metadata", "u8", [None])],
            parameters=sum(int(p.numel()) for p in params),
            dtypes=sorted({str(p.dtype).removeprefix("torch.") for p in params}),
            source=self.lm.source,
            notes=[
                f"prompt graph: {self.lm.max_positions} positions, vocabulary {self.lm.vocab_size}",
                "settings: " + ", ".join(f"{k}={v.value}" for k, v in self.describe_properties().items()),
            ],
        )

    def init_execution_context(self, budget: ByteBudget | None = None) -> PromptContext:
        return PromptContext(self, budget)

    def run(self, inputs: list[Tensor]) -> dict[str, Tensor]:
        """The plain path (a named compute, say): a whole reply for input 0, with input 1's settings."""
        ctx = self.init_execution_context()
        try:
            for index, tensor in enumerate(inputs):
                ctx.set_input(index, tensor)
            ctx.compute()
            assert ctx.outputs is not None
            return dict(zip(OUTPUT_NAMES, ctx.outputs, strict=True))
        finally:
            ctx.release()


def _fmt(value: float) -> str:
    return f"{value:g}"


class PromptContext(ExecutionContext):
    """WasmEdge's GGML call sequence on a prompt graph, and the Python prompt call (:meth:`prompt`)."""

    graph: PromptGraph

    def __init__(self, graph: PromptGraph, budget: ByteBudget | None = None) -> None:
        super().__init__(graph, budget)
        self.overrides: dict[str, Any] = {}
        self.prompt_ids: list[int] = []
        self.generation: Generation | None = None  # the reply compute_single is streaming, if any
        self.reply: bytes = b""
        self.piece: bytes = b""  # what the last compute_single added to the reply
        self.tokens = 0  # tokens the last call produced (for the timeline)
        self._last_count = 0  # output tokens of the last reply, once its generation is gone
        self.finish_reason: str | None = None  # why the last reply ended
        # The owning guest's stop reason (interrupted, past its deadline), checked between tokens: a whole reply
        # is one host call, which a guest's deadline could not cut short otherwise.
        self.stop_check: Callable[[], str | None] | None = None
        self.oversized = 0  # bytes of a prompt too long to tokenize (prompt_too_long at compute, as WasmEdge says)

    # -- inputs ---------------------------------------------------------------------------------------------

    def set_input_bytes(self, index: int, dims: tuple[int, ...], ttype: TensorType, data: Any) -> None:
        """Input 0 is the prompt and input 1 the metadata JSON, taken as bytes whatever dims and type say
        (WasmEdge's guests send dims [1] for N bytes)."""
        nbytes = len(data)
        if index == 1 and nbytes > MAX_METADATA:
            fail(ErrorCode.INVALID_ARGUMENT, f"metadata of {nbytes} bytes; at most {MAX_METADATA} are read")
        raw = bytes(data)
        if index == 1:
            self.admit(index, nbytes)
            self.overrides = {**self.overrides, **parse_wasmedge_options(raw, "metadata (input 1)")}
        else:
            positions = self.graph.lm.max_positions
            oversized = nbytes if nbytes > positions * MAX_BYTES_PER_POSITION else 0
            ids = [] if oversized else self.graph.lm.encode(raw)
            self.admit(index, nbytes)
            self.budget.charge(TOKEN_BYTES * (len(ids) - len(self.prompt_ids)))  # the token ids kept for them
            self._end_stream()
            self._last_count = 0
            self.oversized = oversized
            self.prompt_ids = ids
            self.reply, self.piece = b"", b""
            self._drop_outputs()
        self.store_input(index, _bytes_tensor(raw))

    def set_input(self, index: int, tensor: Tensor) -> None:
        raw = tensor.raw_numpy() if tensor.device == "cpu" else np.asarray(tensor.to_numpy()).view(np.uint8)
        self.set_input_bytes(index, tensor.dims, tensor.type, raw.reshape(-1))

    # -- outputs ---------------------------------------------------------------------------------------------

    def metadata(self) -> bytes:
        generated = len(self.generation.ids) if self.generation is not None else self._last_count
        return json.dumps(
            {
                "input_tokens": len(self.prompt_ids),
                "output_tokens": generated,
                "model": self.graph.lm.kind,
                "backend": "wasinn-jupyter (PyTorch)",
            }
        ).encode()

    def get_output(self, index: int) -> Tensor:
        if index == 1:
            return _bytes_tensor(self.metadata())  # from set_input on, as WasmEdge answers
        if index != 0:
            fail(ErrorCode.INVALID_ARGUMENT, f"output index {index}: a prompt graph has outputs 0 (text), 1 (metadata)")
        return _bytes_tensor(self.reply)

    def get_output_single(self, index: int) -> Tensor:
        if index == 1:
            return _bytes_tensor(self.metadata())
        if index != 0:
            fail(ErrorCode.INVALID_ARGUMENT, f"output index {index}: a prompt graph has outputs 0 (text), 1 (metadata)")
        return _bytes_tensor(self.piece)

    # -- compute ---------------------------------------------------------------------------------------------

    def _start(self) -> Generation:
        if self.oversized:
            fail(
                ErrorCode.PROMPT_TOO_LONG,
                f"the prompt is {self.oversized} bytes: far more than the model's {self.graph.lm.max_positions} "
                "positions hold",
            )
        settings = self.graph.settings(self.overrides)
        return Generation(self.graph.lm, self.prompt_ids, settings, self.budget)

    def compute(self) -> None:
        """The whole reply. context_full still leaves the reply so far at output 0 (LlamaEdge reads it)."""
        for _ in self.stream():
            pass

    def stream(self, on_piece: Callable[[bytes], None] | None = None, full_ends: bool = False) -> Iterator[bytes]:
        """Generate the whole reply, yielding each piece as it is produced (calling ``on_piece`` too). A full
        context is context_full (WasmEdge's compute), or with ``full_ends`` one more way for a reply to end."""
        if not self._busy.acquire(blocking=False):
            fail(ErrorCode.BUSY, "this execution context is already computing")
        self.tokens = 0
        try:
            self._end_stream()
            self._drop_outputs()
            generation = self._start()
            self.reply, shown = b"", 0
            try:
                while True:
                    stopped = self.stop_check() if self.stop_check is not None else None
                    if stopped:
                        fail(ErrorCode.RUNTIME_ERROR, f"the reply was cut short after {self.tokens} tokens: {stopped}")
                    try:
                        self._step(generation)
                    except WasiNNError as err:
                        self.finish_reason = err.message
                        if err.code is ErrorCode.END_OF_SEQUENCE or (full_ends and err.code is ErrorCode.CONTEXT_FULL):
                            break
                        raise
                    self.tokens += 1
                    piece = self.reply[shown:]
                    shown = len(self.reply)
                    if piece:
                        if on_piece is not None:
                            on_piece(piece)
                        yield piece
            finally:
                self._last_count = len(generation.ids)
                generation.release()
                self._finish_outputs()
        finally:
            self._busy.release()

    def compute_single(self) -> None:
        """One more token of the reply (the prompt is evaluated at the first call)."""
        if not self._busy.acquire(blocking=False):
            fail(ErrorCode.BUSY, "this execution context is already computing")
        self.tokens = 0
        try:
            if self.generation is None:
                self._drop_outputs()
                self.reply = b""
                self.generation = self._start()
            before = len(self.reply)
            try:
                self._step(self.generation)
            except WasiNNError as err:
                self.piece = b""
                self.finish_reason = err.message
                raise
            self.tokens = 1
            self.piece = self.reply[before:]
        finally:
            self._busy.release()

    def fini_single(self) -> None:
        """End the streamed reply: its cache is freed and the next compute_single starts over."""
        self._end_stream()
        self.reply, self.piece = b"", b""

    def _step(self, generation: Generation) -> None:
        try:
            generation.step()
        except WasiNNError:
            raise
        except Exception as exc:
            generation.release()
            if out_of_host_memory(exc):
                raise WasiNNError(ErrorCode.TOO_LARGE, f"the model ran out of memory: {exc}") from exc
            raise WasiNNError(ErrorCode.RUNTIME_ERROR, model_error(exc)) from exc
        self.reply = generation.text

    def _end_stream(self) -> None:
        if self.generation is not None:
            self._last_count = len(self.generation.ids)
            self.generation.release()
            self.generation = None

    def _finish_outputs(self) -> None:
        outputs = [_bytes_tensor(self.reply), _bytes_tensor(self.metadata())]
        nbytes = sum(t.nbytes for t in outputs)
        self.budget.charge(nbytes)
        self._output_bytes = nbytes
        self.outputs = outputs
        self.output_names = list(OUTPUT_NAMES)

    # -- the Python and component paths ------------------------------------------------------------------------

    def compute_named(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        unknown = sorted(set(inputs) - set(INPUT_NAMES))
        if unknown or "prompt" not in inputs:
            fail(ErrorCode.INVALID_ARGUMENT, f"a prompt graph takes 'prompt' (and 'metadata'); got {sorted(inputs)}")
        self._drop_inputs()
        self.overrides = {}
        if "metadata" in inputs:
            self.set_input(1, inputs["metadata"])
        self.set_input(0, inputs["prompt"])
        self.compute()
        assert self.outputs is not None
        return dict(zip(OUTPUT_NAMES, self.outputs, strict=True))

    def prompt(self, text: str | bytes, on_piece: Callable[[bytes], None] | None = None) -> bytes:
        """PR 79's ``compute(prompt: string) -> string``: the reply to ``text``, its pieces streamed to ``on_piece``."""
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        self.set_input_bytes(0, (len(raw),), U8, np.frombuffer(raw, dtype=np.uint8))
        for _ in self.stream(on_piece, full_ends=True):
            pass
        return self.reply

    def release(self) -> None:
        self._end_stream()
        self.close()

    def close(self) -> None:
        self._end_stream()
        self.budget.charge(-TOKEN_BYTES * len(self.prompt_ids))
        self.prompt_ids = []
        super().close()


# ---------------------------------------------------------------------------------------------------------------
# Loading


def _require(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        fail(ErrorCode.UNSUPPORTED_OPERATION, f"{what} needs the {module!r} package: {INSTALL_HINT}")


def is_hf_dir(path: Path) -> bool:
    """A Hugging Face model directory: a config.json that is not the small GPT's."""
    from .tinygpt import CONFIG, is_tinygpt_dir

    return path.is_dir() and (path / CONFIG).is_file() and not is_tinygpt_dir(path)


def is_lm_source(source: Any) -> bool:
    """Whether ``source`` (what a user registers) is something this backend loads: a GGUF file, a model directory
    with a config.json and no TorchScript model.pt, a TinyGPT module or a transformers ``(model, tokenizer)``."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if path.is_file():
            return path.suffix.lower() == ".gguf"
        return path.is_dir() and (path / "config.json").is_file() and not (path / "model.pt").exists()
    if type(source).__name__ == "TinyGPT" and type(source).__module__ == f"{__package__}.tinygpt":
        return True
    return isinstance(source, tuple) and len(source) == 2 and hasattr(source[0], "generation_config")


def _check_size(files: list[Path], max_bytes: int) -> None:
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        fail(
            ErrorCode.TOO_LARGE,
            f"the model's weights are {total} bytes, over the limit of {max_bytes} (max_model_bytes)",
        )


def load_hf(path: Path, device: str, max_bytes: int) -> HuggingFaceLM:
    """A Hugging Face causal LM: a directory (safetensors weights only) or a .gguf file (dequantized by
    transformers). Local files only, no remote code."""
    transformers = _require("transformers", "a Hugging Face model")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    options: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if path.is_file():  # GGUF: transformers dequantizes it, and needs gguf and accelerate for that
        _require("gguf", "a GGUF model")
        _require("accelerate", "a GGUF model")
        _check_size([path], max_bytes)
        where, options["gguf_file"] = path.parent, path.name
    else:
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            pickled = sorted(p.name for p in path.glob("*.bin"))
            hint = f" ({', '.join(pickled)} are pickles, never loaded)" if pickled else ""
            fail(ErrorCode.INVALID_ENCODING, f"{path} holds no *.safetensors weights{hint}: save_pretrained them so")
        _check_size(weights, max_bytes)
        where = path
        options["use_safetensors"] = True
    bars = transformers.utils.logging
    showing = bars.is_progress_bar_enabled()
    bars.disable_progress_bar()  # a progress bar per load would clutter a notebook cell and the CLI's stderr
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(where), **{k: v for k, v in options.items() if k != "use_safetensors"}
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(str(where), **options)
    except WasiNNError:
        raise
    except Exception as exc:
        if out_of_host_memory(exc):
            raise WasiNNError(ErrorCode.TOO_LARGE, f"{path} ran out of memory while loading: {exc}") from exc
        raise WasiNNError(ErrorCode.INVALID_ENCODING, f"{path} could not be loaded by transformers: {exc}") from exc
    finally:
        if showing:
            bars.enable_progress_bar()
    model = model.to(device).eval()
    return HuggingFaceLM(model, tokenizer, str(path), device)


def load_lm(path: Path, device: str, max_bytes: int) -> CausalLM:
    from . import tinygpt

    if tinygpt.is_tinygpt_dir(path):
        module = tinygpt.load_dir(path, device, max_bytes)
        return TinyLM(module, str(path), device)
    if path.is_file() and path.suffix.lower() != ".gguf":
        fail(ErrorCode.INVALID_ENCODING, f"{path}: a language model is a directory or a .gguf file")
    if not path.exists():
        fail(ErrorCode.NOT_FOUND, f"model path {path} does not exist")
    if path.is_dir() and not (path / "config.json").is_file():
        fail(ErrorCode.NOT_FOUND, f"directory {path} holds no config.json (a Hugging Face or wasinn-tinygpt model)")
    return load_hf(path, device, max_bytes)


class LanguageModelBackend(Backend):
    """Prompt graphs: the small GPT's directories, Hugging Face directories, GGUF files; live models too."""

    name = "language-model"

    def from_path(self, path: Path, device: str, name: str, max_bytes: int, suffix: str | None = None) -> Graph:
        return PromptGraph(name, load_lm(path, device, max_bytes))

    def from_object(self, obj: Any, device: str, name: str) -> Graph:
        """A TinyGPT module, or a ``(model, tokenizer)`` pair from transformers."""
        from .tinygpt import TinyGPT

        if isinstance(obj, TinyGPT):
            return PromptGraph(name, TinyLM(obj.to(device).eval(), f"{type(obj).__name__} object", device))
        if isinstance(obj, tuple) and len(obj) == 2 and hasattr(obj[0], "generation_config"):
            model, tokenizer = obj
            return PromptGraph(name, HuggingFaceLM(model.to(device).eval(), tokenizer, "transformers objects", device))
        fail(ErrorCode.INVALID_ARGUMENT, f"{type(obj).__name__} is not a TinyGPT nor a (model, tokenizer) pair")
