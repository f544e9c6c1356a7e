"""A small GPT defined in the package: what prompt graphs run when ``transformers`` is not installed.

It is a plain decoder-only transformer (learned positions, pre-norm blocks, tied output head) with a key/value
cache, so each new token costs one position of attention. Its tokenizer is byte-level: ids 0-255 are the bytes
themselves and 256 ends a text, so any prompt tokenizes and every piece it emits is raw bytes (as llama.cpp's
pieces are: a character may span two tokens).

Its save format is a directory, loaded without unpickling anything:

- ``config.json``: ``{"format": "wasinn-tinygpt", "vocab_size", "n_layer", "n_head", "n_embd", "block_size",
  "eos_token_id"}``;
- ``model.safetensors``: the weights in the safetensors layout (an 8-byte header length, a JSON header of names,
  dtypes, shapes and offsets, then the bytes), written and read here, so the ``safetensors`` package is optional;
- ``tokenizer.json``: ``{"type": "bytes", "eos_token": "<|endoftext|>", "eos_token_id": 256}``.

Tests build one on the fly (random, or trained for seconds by :func:`train` on text they ship) and load it back
through :func:`load_dir`, the same code a user's directory goes through.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ErrorCode, fail

FORMAT = "wasinn-tinygpt"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
EOS_TEXT = "<|endoftext|>"
BYTES = 256

# Bounds a config file is held to before anything is allocated from it.
_LIMITS = {"n_layer": 64, "n_head": 64, "n_embd": 8192, "block_size": 1 << 16}
_MAX_HEADER = 16 << 20
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
_DTYPE_NAMES = {v: k for k, v in _DTYPES.items()}

Past = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TinyGPTConfig:
    vocab_size: int = BYTES + 1
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    block_size: int = 128
    eos_token_id: int = BYTES

    @classmethod
    def from_json(cls, data: Any) -> TinyGPTConfig:
        """A config checked field by field (invalid_encoding naming the first bad one)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            fail(ErrorCode.INVALID_ENCODING, f"config.json is not a {FORMAT} config (\"format\": \"{FORMAT}\")")
        values: dict[str, int] = {}
        for f in fields(cls):
            value = data.get(f.name, f.default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(ErrorCode.INVALID_ENCODING, f"config.json: {f.name} must be a positive integer, got {value!r}")
            limit = _LIMITS.get(f.name)
            if limit is not None and value > limit:
                fail(ErrorCode.INVALID_ENCODING, f"config.json: {f.name} = {value} is over the limit of {limit}")
            values[f.name] = value
        config = cls(**values)
        if config.vocab_size != BYTES + 1 or config.eos_token_id != BYTES:
            fail(ErrorCode.INVALID_ENCODING, "config.json: the byte tokenizer needs vocab_size 257, eos_token_id 256")
        if config.n_embd % config.n_head:
            fail(ErrorCode.INVALID_ENCODING, "config.json: n_embd must be a multiple of n_head")
        return config


class ByteTokenizer:
    """Bytes are tokens; 256 ends a text."""

    eos_token_id = BYTES

    def encode(self, text: bytes) -> list[int]:
        return list(text)

    def decode(self, ids: Sequence[int]) -> bytes:
        return bytes(i for i in ids if 0 <= i < BYTES)


class _Block(nn.Module):
    def __init__(self, config: TinyGPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(), nn.Linear(4 * config.n_embd, config.n_embd)
        )

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        batch, steps, width = x.shape
        q, k, v = self.attn(self.ln_1(x)).split(width, dim=2)
        shape = (batch, steps, self.n_head, width // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        if past is not None:
            k = torch.cat((past[0], k), dim=2)
            v = torch.cat((past[1], v), dim=2)
        mask = None
        if steps > 1:  # new positions see the cache and the earlier new positions
            mask = torch.ones(steps, k.shape[2], dtype=torch.bool, device=x.device).tril(k.shape[2] - steps)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(batch, steps, width))
        return x + self.mlp(self.ln_2(x)), (k, v)


class TinyGPT(nn.Module):
    def __init__(self, config: TinyGPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)

    def forward(self, ids: torch.Tensor, past: Past | None = None) -> tuple[torch.Tensor, Past]:
        """Logits for every position of ``ids`` (batch, steps), continuing from ``past``; and the new cache."""
        start = past[0][0].shape[2] if past else 0
        if start + ids.shape[1] > self.config.block_size:
            raise ValueError(f"position {start + ids.shape[1]} is past block_size {self.config.block_size}")
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        x = self.wte(ids) + self.wpe(positions)
        cache: Past = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, past[i] if past else None)
            cache.append(kv)
        return self.ln_f(x) @ self.wte.weight.T, cache

    def kv_bytes_per_token(self) -> int:
        """What the cache grows by per position (keys and values of every layer)."""
        itemsize = self.wte.weight.element_size()
        return 2 * self.config.n_layer * self.config.n_embd * itemsize


def build(config: TinyGPTConfig | None = None, seed: int = 0) -> TinyGPT:
    """A randomly initialised model (deterministic for a seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyGPT(config or TinyGPTConfig()).eval()


def train(
    text: bytes, config: TinyGPTConfig | None = None, steps: int = 150, seed: int = 0, lr: float = 1e-2
) -> TinyGPT:
    """A model trained on ``text`` (windows of it, end of text appended) for ``steps`` steps: enough for a small
    model to learn short texts, so tests can check what it says. It trains on one thread: tensors this small gain
    nothing from more, and on a busy machine torch's spinning threads made it ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(text, config or TinyGPTConfig(), steps, seed, lr)
    finally:
        torch.set_num_threads(threads)


def _train(text: bytes, config: TinyGPTConfig, steps: int, seed: int, lr: float) -> TinyGPT:
    model = build(config, seed).train()
    data = torch.tensor([*text, config.eos_token_id], dtype=torch.long)
    window = min(config.block_size, len(data) - 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - window, (16,), generator=gen) if len(data) > window + 1 else None
        rows = [data[s : s + window + 1] for s in starts] if starts is not None else [data]
        batch = torch.stack(rows)
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return model.eval()


# -- the save format -------------------------------------------------------------------------------------------


def save(model: TinyGPT, directory: str | Path) -> Path:
    """Write ``model`` as a directory :func:`load_dir` reads."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG).write_text(json.dumps({"format": FORMAT, **asdict(model.config)}, indent=2))
    (path / TOKENIZER).write_text(json.dumps({"type": "bytes", "eos_token": EOS_TEXT, "eos_token_id": BYTES}))
    write_safetensors(path / WEIGHTS, {k: v.detach().cpu() for k, v in model.state_dict().items()})
    return path


def is_tinygpt_dir(path: Path) -> bool:
    """Whether ``path`` is a directory in this format (its config says so)."""
    config = path / CONFIG
    if not path.is_dir() or not config.is_file() or config.stat().st_size > 1 << 20:
        return False
    try:
        return bool(json.loads(config.read_text()).get("format") == FORMAT)
    except (ValueError, AttributeError, OSError):
        return False


def load_dir(path: Path, device: str, max_bytes: int) -> TinyGPT:
    """A model from a directory written by :func:`save` (or by hand in that format), checked before use."""
    try:
        config = TinyGPTConfig.from_json(json.loads((path / CONFIG).read_text()))
    except (OSError, ValueError) as exc:
        fail(ErrorCode.INVALID_ENCODING, f"{path / CONFIG} could not be read: {exc}")
    tokenizer = path / TOKENIZER
    if tokenizer.exists():
        try:
            kind = json.loads(tokenizer.read_text()).get("type")
        except (OSError, ValueError, AttributeError) as exc:
            fail(ErrorCode.INVALID_ENCODING, f"{tokenizer} could not be read: {exc}")
        if kind != "bytes":
            fail(ErrorCode.INVALID_ENCODING, f"{tokenizer}: only the byte tokenizer (\"type\": \"bytes\") is known")
    weights = read_safetensors(path / WEIGHTS, max_bytes)
    model = TinyGPT(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        extra = sorted(set(found) - set(expected))
        fail(
            ErrorCode.INVALID_ENCODING,
            f"{path / WEIGHTS} does not fit its config: missing {missing[:5]}, wrong shape {wrong[:5]}, "
            f"unknown {extra[:5]}",
        )
    dtype = next(iter(weights.values())).dtype
    model.to(dtype).load_state_dict(weights)
    return model.to(device).eval()


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for name, tensor in tensors.items():
        blob = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _DTYPE_NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path: Path, max_bytes: int) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file: the header is checked (sizes, offsets inside the file) before any copy."""
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        fail(ErrorCode.NOT_FOUND, f"{path} could not be read: {exc.strerror or exc}")
    if size > max_bytes:
        fail(ErrorCode.TOO_LARGE, f"{path} is {size} bytes, over the limit of {max_bytes} (max_model_bytes)")
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail(ErrorCode.INVALID_ENCODING, f"{path} is not a safetensors file (too short)")
    (length,) = struct.unpack_from("<Q", raw)
    if length > min(_MAX_HEADER, len(raw) - 8):
        fail(ErrorCode.INVALID_ENCODING, f"{path}: a header of {length} bytes does not fit the file")
    try:
        header = json.loads(raw[8 : 8 + length])
    except ValueError as exc:
        fail(ErrorCode.INVALID_ENCODING, f"{path}: the header is not JSON: {exc}")
    if not isinstance(header, dict):
        fail(ErrorCode.INVALID_ENCODING, f"{path}: the header is not a JSON object")
    body = memoryview(raw)[8 + length :]
    out: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape = [int(d) for d in entry["shape"]]
            start, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            fail(ErrorCode.INVALID_ENCODING, f"{path}: tensor {name!r}: a bad header entry (dtypes: F32 F16 BF16 F64)")
        count = math.prod(shape) if all(d >= 0 for d in shape) else -1
        itemsize = torch.empty((), dtype=dtype).element_size()
        if count < 0 or not 0 <= start <= end <= len(body) or end - start != count * itemsize:
            fail(ErrorCode.INVALID_ENCODING, f"{path}: tensor {name!r} does not fit its offsets or the file")
        data = bytearray(body[start:end])
        flat = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(shape)
    return out
