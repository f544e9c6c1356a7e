"""Hostile TorchScript archives: what a guest can hand wasi-nn ``load`` to reach past its sandbox.

Each builder returns the bytes of a real TorchScript archive (``torch.jit.script`` + ``torch.jit.save``, and where
the attack needs bytes that the scripter will not write, the archive's files edited inside the zip). Every one does
harm when the host loads and runs it in-process with ``torch.jit.load``, as it did before the sandbox (3b043e6),
through ``Host().client()`` and through a wasm guest alike:

- ``read_file``: the guest's output is the file's bytes (a secret the test writes; ``root:x:0:0:root:``);
- ``write_file_on_load`` / ``write_file_in_forward``: the file is created, or its start overwritten, during
  ``load`` / ``compute``; ``save_in_forward`` writes a zip there with ``aten::save``;
- ``call_host_op``: a Python operator the host registered runs with the guest's arguments (it creates a file);
  ``python_kernel``: torch's own Python-implemented ``debugprims::load_tensor`` runs in the host;
- ``reseed_rng``: the host's global random generator is reset to the guest's seed;
- ``stale_heap``: the output is 64 KiB of the host's heap (a secret the host holds comes back);
- ``deep_nesting``: SIGSEGV (rc -11) in ``load``; ``empty_storage``: SIGSEGV in ``compute``;
- ``spin_on_load`` / ``spin_in_forward``: ``load`` / ``compute`` never return; ``detached_spin``: ``compute``
  returns, a host thread spins on, and the process never exits;
- ``hoard_on_load`` / ``hoard_in_forward``: the host's memory grows until something kills it (the kernel's OOM
  killer ended one unguarded run at 24 GB resident); ``huge_allocation``: 256 GiB asked for
  (an error under strict overcommit, the OOM killer elsewhere).

``test_hostile_models.py`` loads them only in throwaway subprocesses. Never ``torch.jit.load`` one of these in a
process you care about. Every model takes one float32 input ``x`` (the tests hand it ``zeros(4)``).
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from collections.abc import Callable

import torch

# -- archive plumbing ---------------------------------------------------------------------------------------------


def save(module: torch.nn.Module) -> bytes:
    """The TorchScript archive of ``module`` (scripted), as ``torch.jit.save`` writes it."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; guests still use it
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def code_entries(archive: bytes) -> dict[str, str]:
    """The archive's TorchScript code files (``<dir>/code/**.py``), by name."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        return {n: zf.read(n).decode() for n in zf.namelist() if "/code/" in n and n.endswith(".py")}


def rewrite(archive: bytes, edit: Callable[[str, bytes], bytes | None], *, deflate_code: bool = True) -> bytes:
    """A new, valid zip: every entry of ``archive`` in order, ``edit(name, data)`` replacing the data where it returns
    bytes (None keeps the entry as it is). Code files are deflated, as torch's own writer may not; the rest keep
    their compression."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            new = edit(info.filename, data)
            entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            entry.compress_type = info.compress_type
            if "/code/" in info.filename and deflate_code:
                entry.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(entry, data if new is None else new)
    return out.getvalue()


def replace_code(archive: bytes, old: str, new: str) -> bytes:
    """``archive`` with ``old`` replaced by ``new`` in its code files (it must occur in at least one)."""
    hits = []

    def edit(name: str, data: bytes) -> bytes | None:
        if "/code/" not in name or not name.endswith(".py"):
            return None
        text = data.decode()
        if old not in text:
            return None
        hits.append(name)
        return text.replace(old, new).encode()

    result = rewrite(archive, edit)
    if not hits:
        raise ValueError(f"{old!r} is in no code file of the archive")
    return result


# -- benign models: the positive controls -------------------------------------------------------------------------


class Linear4(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x)) + 0.5


class ConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        return torch.softmax(self.fc(y), dim=1)


def benign_linear() -> bytes:
    """A Linear(4, 3) + relu: takes float32 [4], the model every attack's recovery check loads next."""
    return save(Linear4().eval())


def benign_convnet() -> bytes:
    """A small conv net (conv, batch norm, pool, linear, softmax) on float32 [N, 3, H, W]: a mobilenet in miniature."""
    return save(ConvNet().eval())


def benign_module(archive: bytes) -> torch.nn.Module:
    """A benign archive loaded for comparison (only ever call this on the benign builders' bytes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(io.BytesIO(archive))


# -- reading host files -------------------------------------------------------------------------------------------


class ReadFile(torch.nn.Module):
    def __init__(self, path: str, size: int) -> None:
        super().__init__()
        self.path = path
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_file(self.path, shared=False, size=self.size, dtype=torch.uint8)


def read_file(path: str, size: int) -> bytes:
    """forward maps host file ``path`` (``torch.from_file``, at most its size) and returns its first ``size`` bytes."""
    return save(ReadFile(path, size))


# -- writing host files -------------------------------------------------------------------------------------------


class WriteOnLoad(torch.nn.Module):
    def __init__(self, path: str, payload: list[int]) -> None:
        super().__init__()
        self.path = path
        self.payload = payload
        self.written = torch.zeros(1)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, list[int]]:
        return (self.path, self.payload)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, list[int]]) -> None:
        self.training = False
        self.path = state[0]
        self.payload = state[1]
        mapped = torch.from_file(self.path, shared=True, size=len(self.payload), dtype=torch.uint8)
        mapped.copy_(torch.tensor(self.payload, dtype=torch.uint8))
        self.written = mapped.float()  # keeps the write alive through dead-code elimination

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def write_file_on_load(path: str, payload: bytes) -> bytes:
    """``__setstate__`` creates (or overwrites the start of) host file ``path`` with ``payload``, in torch.jit.load."""
    return save(WriteOnLoad(path, list(payload)))


class WriteInForward(torch.nn.Module):
    def __init__(self, path: str, payload: list[int]) -> None:
        super().__init__()
        self.path = path
        self.payload = payload

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mapped = torch.from_file(self.path, shared=True, size=len(self.payload), dtype=torch.uint8)
        mapped.copy_(torch.tensor(self.payload, dtype=torch.uint8))
        return x + mapped.float().sum() * 0.0


def write_file_in_forward(path: str, payload: bytes) -> bytes:
    """forward creates (or overwrites the start of) host file ``path`` with ``payload`` through a shared mapping."""
    return save(WriteInForward(path, list(payload)))


class SaveInForward(torch.nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.path)  # aten::save: a torch.save zip written from TorchScript
        return x


def save_in_forward(path: str) -> bytes:
    """forward calls TorchScript's ``torch.save`` (``aten::save``), which writes a zip file at host path ``path``."""
    return save(SaveInForward(path))


# -- crashing the process -----------------------------------------------------------------------------------------


class Identity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def identity() -> bytes:
    """forward returns its input: the seed the code edits start from."""
    return save(Identity())


def deep_nesting(depth: int = 100_000) -> bytes:
    """forward's code nests ``depth`` parentheses (about 1.6 KB deflated): the TorchScript parser recurses off the
    native stack inside torch.jit.load and the process dies with SIGSEGV."""
    return replace_code(identity(), "return x", "return " + "(" * depth + "x" + ")" * depth)


def empty_storage() -> bytes:
    """The benign Linear(4, 3) with its bias's storage file emptied (the pickle still declares 3 floats): loads,
    then forward reads through a storage that has no memory and the process dies with SIGSEGV."""
    return rewrite(benign_linear(), lambda name, data: b"" if name.endswith("/data/1") else None)


class Buffer(torch.nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("buf", torch.zeros(size, dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.buf


def stale_heap(size: int = 1 << 16) -> bytes:
    """forward returns a ``size``-byte buffer whose storage file holds 1 byte: libtorch allocates the record's
    size (1 byte) but gives the tensor the declared one, so the output is ``size`` bytes of the loading process's
    heap beyond that allocation (the host's and other guests' data, pointers)."""
    return rewrite(save(Buffer(size)), lambda name, data: data[:1] if name.endswith("/data/0") else None)


# -- hanging the host ---------------------------------------------------------------------------------------------


class SpinInForward(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        while i >= 0:  # int64: about 300 years at a billion iterations a second
            i += 1
        return x + i


def spin_in_forward() -> bytes:
    """forward loops forever: compute never returns."""
    return save(SpinInForward())


class SpinOnLoad(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    @torch.jit.export
    def __getstate__(self) -> int:
        return self.count

    @torch.jit.export
    def __setstate__(self, state: int) -> None:
        self.training = False
        i = state
        while i >= 0:
            i += 1
        self.count = i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def spin_on_load() -> bytes:
    """``__setstate__`` loops forever: torch.jit.load never returns."""
    return save(SpinOnLoad())


def _spin(x: torch.Tensor) -> torch.Tensor:
    i = 0
    while i >= 0:
        i += 1
    return x + i


class DetachedSpin(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pending = [torch.jit.fork(_spin, x)]
        if bool(x.sum() > 1e30):  # never taken; keeps the fork alive through dead-code elimination
            return torch.jit.wait(pending[0])
        return x + 1.0


def detached_spin() -> bytes:
    """forward forks (``torch.jit.fork``) an endless loop onto the host's inter-op thread pool and returns at once:
    compute succeeds, a host thread spins for ever after, and the process can no longer exit (the pool is joined)."""
    return save(DetachedSpin())


# -- host memory --------------------------------------------------------------------------------------------------


class HoardInForward(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks: list[torch.Tensor] = []
        n = 0
        while n >= 0:
            chunks.append(torch.ones(1 << 24))  # 64 MiB, written: resident, not just reserved
            n += 1
        return chunks[0][:4]


def hoard_in_forward() -> bytes:
    """forward appends written 64 MiB tensors to a list until allocation fails or the process is killed."""
    return save(HoardInForward())


class HoardOnLoad(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.held = [torch.zeros(1)]

    @torch.jit.export
    def __getstate__(self) -> int:
        return 0

    @torch.jit.export
    def __setstate__(self, state: int) -> None:
        self.training = False
        chunks: list[torch.Tensor] = []
        n = state
        while n >= 0:
            chunks.append(torch.ones(1 << 24))
            n += 1
        self.held = chunks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def hoard_on_load() -> bytes:
    """``__setstate__`` appends written 64 MiB tensors to a list, during torch.jit.load, without end."""
    return save(HoardOnLoad())


class HugeAllocation(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        big = torch.empty(1 << 36)  # 256 GiB of float32
        big.fill_(1.0)
        return x + big[:4]


def huge_allocation() -> bytes:
    """forward allocates and writes one 256 GiB tensor: an allocation error under strict overcommit, the
    out-of-memory killer where the kernel overcommits."""
    return save(HugeAllocation())


# -- changing the host's state -----------------------------------------------------------------------------------


class Reseed(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(self.seed)
        return x + 0.0


def reseed_rng(seed: int = 1234) -> bytes:
    """forward calls ``torch.manual_seed(seed)`` (``aten::manual_seed``): the process's global random generator is
    the guest's to set, so whatever the host's user draws next is what the guest chose."""
    return save(Reseed(seed))


# -- running Python in the host -----------------------------------------------------------------------------------


class PythonKernel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.name = "any"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # debugprims::load_tensor is registered by torch itself with a Python implementation
        loaded = torch.ops.debugprims.load_tensor(self.name, [4], [1], dtype=torch.float32, device=torch.device("cpu"))
        return x + loaded * 0.0


PYTHON_KERNEL_MARKER = "torch._dynamo.testing"  # the module debugprims' Python kernel imports when it runs


def python_kernel() -> bytes:
    """forward calls ``torch.ops.debugprims.load_tensor``, an operator torch implements in Python: the guest's
    archive runs Python in the host (it imports ``torch._dynamo.testing`` there)."""
    return save(PythonKernel())


HOST_OP = "hostile::touch"  # the schema a test registers in the host, as a notebook might: (str path) -> Tensor
_PLACEHOLDER = re.compile(r"ops\.debugprims\.load_tensor\(([A-Za-z_0-9]+), \[4\], \[1\], dtype=6, device=[^\n]*\)\n")


class CallHostOp(torch.nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        made = torch.ops.debugprims.load_tensor(self.path, [4], [1], dtype=torch.float32, device=torch.device("cpu"))
        return x + made * 0.0


def call_host_op(path: str, op: str = HOST_OP) -> bytes:
    """forward calls ``torch.ops.<op>(path)``, an operator the host process registered in Python (any library or
    notebook cell that defines one): the guest picks the arguments. Built by renaming a scripted call."""
    archive = save(CallHostOp(path))
    namespace, name = op.split("::")
    (code,) = code_entries(archive).values()
    match = _PLACEHOLDER.search(code)
    if match is None:
        raise ValueError(f"the scripted placeholder call is not in the code:\n{code}")
    return replace_code(archive, match.group(0), f"ops.{namespace}.{name}({match.group(1)})\n")


def register_host_op(op: str = HOST_OP) -> None:
    """Register ``op`` in this process as a notebook might: a Python kernel that creates the file it is given."""
    lib = torch.library.Library(op.split("::")[0], "DEF")
    lib.define(f"{op.split('::')[1]}(str path) -> Tensor")

    def touch(path: str) -> torch.Tensor:
        with open(path, "w") as f:
            f.write("written by a Python operator the guest called\n")
        return torch.zeros(4)

    lib.impl(op.split("::")[1], touch, "CompositeExplicitAutograd")
    _LIBRARIES.append(lib)  # a Library unregisters its operators when collected


_LIBRARIES: list[torch.library.Library] = []
