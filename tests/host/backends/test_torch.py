"""The PyTorch backend: every way a graph arrives, what is refused, and model failures."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from wasinn_jupyter.host import Host, Limits, Tensor, WasiNNError
from wasinn_jupyter.host.errors import ErrorCode


class Affine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class TwoHeads(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return a + b, a * b


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return Affine().eval()


def compute(host: Host, name: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name(name))
        for i, x in enumerate(inputs):
            client.set_input(ctx, i, Tensor.from_value(x))
        client.compute(ctx)
        outputs = client.contexts.get(ctx).outputs or []
        return [t.to_torch() for t in outputs]


def test_torchscript_file_and_directory(tmp_path, model) -> None:
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    host = Host()
    info = host.register("file", tmp_path / "model.pt")
    assert (info.kind, info.parameters, info.device) == ("torchscript", 10, "cpu")
    assert [t.name for t in info.inputs or []] == ["x"]
    host.register("dir", tmp_path)  # wasmtime's style: <dir>/model.pt
    x = torch.rand(3, 4)
    expected = model(x)
    for name in ("file", "dir"):
        torch.testing.assert_close(compute(host, name, x)[0], expected)


def test_export_program_file_and_object(tmp_path, model) -> None:
    x = torch.rand(3, 4)
    program = torch.export.export(model, (x,))
    torch.export.save(program, tmp_path / "model.pt2")
    host = Host()
    info = host.register("pt2", tmp_path / "model.pt2")
    assert info.kind == "torch.export"
    assert info.inputs and info.inputs[0].dims == [3, 4] and info.inputs[0].type == "f32"
    host.register("obj", program)
    for name in ("pt2", "obj"):
        torch.testing.assert_close(compute(host, name, x)[0], model(x))


def test_live_module_is_not_modified_and_tuple_outputs(model) -> None:
    host = Host()
    host.register("two", TwoHeads())
    a, b = torch.rand(2), torch.rand(2)
    out = compute(host, "two", a, b)
    torch.testing.assert_close(out[0], a + b)
    torch.testing.assert_close(out[1], a * b)
    training = Affine()  # left in training mode: registered as is, with a note
    info = host.register("training", training)
    assert training.training and any("training mode" in n for n in info.notes)


def test_named_single_call_compute(model) -> None:
    host = Host()
    host.register("two", TwoHeads())
    host.register("echo", "echo")
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("two"))
        out = client.compute_named(
            ctx, {"b": Tensor.from_value(np.ones(2, np.float32)), "a": Tensor.from_value(np.full(2, 3, np.float32))}
        )
        assert list(out) == ["output0", "output1"]
        np.testing.assert_array_equal(out["output1"].to_numpy(), [3, 3])
        with pytest.raises(WasiNNError) as err:
            client.compute_named(ctx, {"a": Tensor.from_value(np.ones(2, np.float32))})
        assert err.value.code is ErrorCode.INVALID_ARGUMENT and "missing ['b']" in err.value.message
        echo = client.init_execution_context(client.load_by_name("echo"))
        out = client.compute_named(echo, {"pixels": Tensor.from_value(np.arange(3, dtype=np.uint8))})
        assert list(out) == ["pixels"]


def test_dict_outputs_keep_their_names() -> None:
    class Named(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"double": x * 2, "half": x / 2}

    host = Host()
    host.register("named", Named())
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("named"))
        out = client.compute_named(ctx, {"x": Tensor.from_value(torch.ones(2))})
        assert sorted(out) == ["double", "half"]


def test_pickles_are_refused(tmp_path, model) -> None:
    torch.save(model, tmp_path / "pickled.pt")
    with pytest.raises(WasiNNError) as err:
        Host().register("p", tmp_path / "pickled.pt")
    assert err.value.code is ErrorCode.INVALID_ENCODING and "pickle" in err.value.message


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "flipped bytes"])
def test_corrupt_files_are_invalid_encoding(tmp_path, model, damage) -> None:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    data = buffer.getvalue()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "not a zip":
        data = b"\x89PNG" + data[4:100]
    else:
        raw = bytearray(data)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # the module's pickle: always read (code may come from
            code = next(i for i in zf.infolist() if i.filename.endswith("/data.pkl"))  # torch's cache of types)
        extra = struct.unpack_from("<H", data, code.header_offset + 28)[0]  # torch pads entries with an extra field
        start = code.header_offset + 30 + len(code.filename) + extra
        raw[start : start + 40] = b"\xff" * 40
        data = bytes(raw)
    (tmp_path / "bad.pt").write_bytes(data)
    with pytest.raises(WasiNNError) as err:
        Host().register("bad", tmp_path / "bad.pt")
    assert err.value.code is ErrorCode.INVALID_ENCODING, err.value


def test_missing_file_and_disallowed_directory(tmp_path, model) -> None:
    with pytest.raises(WasiNNError) as err:
        Host().register("x", tmp_path / "absent.pt")
    assert err.value.code is ErrorCode.NOT_FOUND
    torch.jit.save(torch.jit.script(model), tmp_path / "model.pt")
    allowed = tmp_path / "models"
    allowed.mkdir()
    with pytest.raises(WasiNNError) as err:
        Host(model_dirs=[allowed]).register("x", allowed / ".." / "model.pt")
    assert err.value.code is ErrorCode.SECURITY


def test_model_that_raises_is_runtime_error_with_its_message() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("weights are on fire")

    class NotATensor(nn.Module):
        def forward(self, x: torch.Tensor) -> int:
            return 3

    host = Host()
    host.register("broken", Broken())
    host.register("int", NotATensor())
    for name, text in (("broken", "weights are on fire"), ("int", "outputs must be tensors")):
        with host.client() as client:
            ctx = client.init_execution_context(client.load_by_name(name))
            client.set_input(ctx, 0, Tensor.from_value(np.zeros(1, np.float32)))
            with pytest.raises(WasiNNError) as err:
                client.compute(ctx)
            assert err.value.code is ErrorCode.RUNTIME_ERROR and text in err.value.message


def test_wrong_input_count_is_invalid_argument(model) -> None:
    host = Host()
    host.register("affine", model)
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("affine"))
        with pytest.raises(WasiNNError) as err:
            client.set_input(ctx, 1, Tensor.from_value(np.zeros(4, np.float32)))
        assert "takes 1 input" in err.value.message


def test_load_from_guest_bytes(make_abi, torchscript_identity) -> None:
    abi = make_abi()
    for encoding in (3, 5):  # pytorch, autodetect
        abi.write(8192, torchscript_identity)
        abi.write(512, struct.pack("<II", 8192, len(torchscript_identity)))
        assert abi.call("load", 512, 1, encoding, 0, 64) == 0, abi.guest.client.last_error
        assert abi.call("init_execution_context", abi.u32(64), 68) == 0
        ctx = abi.u32(68)
        data = np.arange(6, dtype=np.float64).tobytes()
        abi.call("set_input", ctx, 0, abi.tensor(1024, [2, 3], 2, data))
        assert abi.call("compute", ctx) == 0, abi.guest.client.last_error
        assert abi.call("get_output", ctx, 0, 4096, 64, 60) == 0
        assert abi.read(4096, 48) == data


def test_export_programs_and_pickles_are_refused_from_guest_bytes(make_abi, tmp_path, model) -> None:
    abi = make_abi()
    torch.export.save(torch.export.export(model, (torch.rand(1, 4),)), tmp_path / "m.pt2")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    for path, text in ((tmp_path / "m.pt2", "not loaded from guest bytes"), (tmp_path / "sd.pt", "pickle")):
        blob = path.read_bytes()
        abi.write(8192, blob)
        abi.write(512, struct.pack("<II", 8192, len(blob)))
        assert abi.call("load", 512, 1, 5, 0, 64) == 2
        assert text in abi.guest.client.last_error


def test_a_host_can_refuse_models_from_guests(make_abi, torchscript_identity) -> None:
    abi = make_abi()
    abi.guest.session.host.limits.guest_models = False
    abi.write(8192, torchscript_identity)
    abi.write(512, struct.pack("<II", 8192, len(torchscript_identity)))
    assert abi.call("load", 512, 1, 3, 0, 64) == 6
    assert "load_by_name" in abi.guest.client.last_error


def test_zip_bombs_and_oversized_files_are_too_large(tmp_path) -> None:
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/code/__torch__.py", b"\0" * (64 << 20))  # 64 MiB that packs to ~64 KiB
    assert bomb.stat().st_size < 1 << 20
    host = Host(limits=Limits(max_model_bytes=8 << 20))
    with pytest.raises(WasiNNError) as err:
        host.register("bomb", bomb)
    assert err.value.code is ErrorCode.TOO_LARGE and "unpacks to" in err.value.message
    big = tmp_path / "big.pt"
    big.write_bytes(bytes(9 << 20))
    with pytest.raises(WasiNNError) as err:
        host.register("big", big)
    assert err.value.code is ErrorCode.TOO_LARGE


def test_empty_inputs_reach_the_model(model) -> None:
    host = Host()
    host.register("affine", model)
    assert compute(host, "affine", torch.ones(0, 4))[0].shape == (0, 2)
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("affine"))
        client.set_input(ctx, 0, Tensor.from_value(np.ones((0, 4), np.float32)))
        client.compute(ctx)
        assert client.get_output(ctx, 0).dims == (0, 2)


def test_empty_input_from_a_guest_reaches_the_model(host, make_abi, model) -> None:
    host.register("affine", model)
    abi = make_abi()
    ctx = abi.open_echo("affine")
    assert abi.call("set_input", ctx, 0, abi.tensor(1024, [0, 4], 1, b"")) == 0
    assert abi.call("compute", ctx) == 0, abi.guest.client.last_error
    assert abi.call("get_output", ctx, 0, 4096, 64, 60) == 0 and abi.u32(60) == 0


def test_model_dir_confinement_follows_a_symlinked_model_file(tmp_path, model) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "graph").mkdir(parents=True)
    outside.mkdir()
    torch.jit.save(torch.jit.script(model), outside / "model.pt")
    (allowed / "graph" / "model.pt").symlink_to(outside / "model.pt")
    host = Host(model_dirs=[allowed])
    with pytest.raises(WasiNNError) as err:
        host.register("escape", allowed / "graph")  # the directory is inside; the file it offers is not
    assert err.value.code is ErrorCode.SECURITY and str(outside) in err.value.message
    (allowed / "graph" / "model.pt").unlink()
    torch.jit.save(torch.jit.script(model), allowed / "graph" / "model.pt")
    assert host.register("inside", allowed / "graph").kind == "torchscript"


def test_a_torch_export_archive_named_pt_is_never_unpickled(tmp_path, model, monkeypatch) -> None:
    x = torch.rand(3, 4)
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "model.pt2")
    (tmp_path / "renamed").mkdir()
    (tmp_path / "model.pt2").rename(tmp_path / "renamed" / "model.pt")
    (tmp_path / "only-pt2").mkdir()
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "only-pt2" / "model.pt2")
    unpickled = []
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: unpickled.append(a))
    host = Host()
    for source in (tmp_path / "renamed" / "model.pt", tmp_path / "renamed"):
        with pytest.raises(WasiNNError) as err:
            host.register("renamed", source)
        assert err.value.code is ErrorCode.INVALID_ENCODING and ".pt2" in err.value.message
    with pytest.raises(WasiNNError) as err:
        host.register("implicit", tmp_path / "only-pt2")  # a directory offers model.pt only
    assert err.value.code is ErrorCode.NOT_FOUND and "model.pt2" in err.value.message
    assert unpickled == []


def test_an_archive_declaring_millions_of_entries_is_refused_before_parsing(make_abi) -> None:
    # an end-of-central-directory record claiming 0xFFFF entries, then a zip64 one claiming ten million
    eocd64 = struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 10_000_000, 10_000_000, 0, 0)
    blob = eocd64 + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    abi = make_abi()
    abi.write(8192, blob)
    abi.write(512, struct.pack("<II", 8192, len(blob)))
    assert abi.call("load", 512, 1, 3, 0, 64) == 7
    assert "10000000 entries" in abi.guest.client.last_error


def test_export_programs_move_to_another_device_in_a_fresh_interpreter(tmp_path) -> None:
    """The GPU path of a torch.export program needs torch.export.passes, which `import torch` does not load."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import torch
        from wasinn_jupyter.host.backends import torch as backend
        program = torch.export.export(torch.nn.Linear(4, 2), (torch.rand(3, 4),))
        graph = backend.from_exported(program, "cpu:0", "moved")  # the same code path as a CUDA target
        print(graph.info().parameters)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "10"


def test_info_reports_dtypes_on_every_call_and_for_export_programs(model) -> None:
    host = Host()
    host.register("module", model)
    host.register("program", torch.export.export(model, (torch.rand(3, 4),)))
    for name in ("module", "program"):
        first, second = host.graphs()[name], host.graphs()[name]
        assert first.dtypes == second.dtypes == ["float32"], name
        assert first.parameters == second.parameters == 10


def test_graphs_keep_the_cpu_fallback_note(model) -> None:
    from wasinn_jupyter.host.cuda import cuda_available

    if cuda_available():
        pytest.skip("the fallback note appears only without CUDA")
    host = Host(cpu_fallback=True)
    assert any("cpu_fallback" in n for n in host.register("fell", model, target="gpu").notes)
    assert any("cpu_fallback" in n for n in host.graphs()["fell"].notes)


def test_target_names_do_not_reach_back_into_device_resolution() -> None:
    """encodings and devices imported each other (auto asked devices, devices imported Target): one way only now."""
    import subprocess
    import sys

    code = (
        "import sys; from wasinn_jupyter.host.encodings import Target; Target.parse('auto'); "
        "print('wasinn_jupyter.host.devices' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_a_torchscript_error_leads_with_its_message_not_the_interpreter_trace(tmp_path) -> None:
    class Bad(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ torch.ones(3, 3)

    host = Host()
    host.register("bad", torch.jit.script(Bad()))
    with host.client() as client:
        ctx = client.init_execution_context(client.load_by_name("bad"))
        client.set_input(ctx, 0, Tensor.from_value(torch.ones(2, 2)))
        with pytest.raises(WasiNNError) as err:
            client.compute(ctx)
    message = err.value.message
    assert message.startswith("RuntimeError: mat1 and mat2 shapes cannot be multiplied"), message
    assert "Traceback of TorchScript" not in message and "in forward" in message and message.count("\n") == 0
