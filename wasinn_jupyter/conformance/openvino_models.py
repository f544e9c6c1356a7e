"""Identity models in OpenVINO IR, one per case, so a host with an OpenVINO backend is measured and not its model.

An OpenVINO model has typed inputs of a static rank (dynamic dimensions are fine; a dynamic rank fails to load in
wasmtime's backend, and a dynamic element type fails to compile). So a case is served by one model exactly when
each input index of the echo graph is sent one (type, rank) pair in it (``runner.signature``); its model has a
Parameter of that type and rank per index, each straight into a Result. Other cases are *not expressible* in
this format and are reported as such.

wasmtime's OpenVINO backend loads ``libopenvino_c.so`` by that unversioned name from ``LD_LIBRARY_PATH``, while the
``openvino`` wheel ships only versioned files (``libopenvino_c.so.2641``): ``runtime_env`` makes the symlink in a
folder of its own and puts both folders on the path.
"""

from __future__ import annotations

import os
from pathlib import Path

from .runner import ECHO, TYPE_NAMES, Case, Signature

INSTALL_HINT = "pip install 'wasinn-jupyter[peers]' (or pip install openvino)"


class OpenVINOMissing(RuntimeError):
    """The ``openvino`` package is not importable: the suite cannot write models for an OpenVINO backend."""


def version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__).split("-")[0]


def not_expressible(case: Case) -> str | None:
    """Why one OpenVINO model cannot be this case's echo graph, or None when it can."""
    if not case.inputs:
        return "the case does not say what its echo graph is sent (Case.inputs is empty), so no model can be chosen"
    if "pytorch" in case.needs:
        return "loads a TorchScript model from guest bytes (encoding pytorch); an OpenVINO backend cannot run it"
    for index, pairs in enumerate(case.inputs):
        if len(pairs) > 1:
            sent = ", ".join(f"{TYPE_NAMES.get(t, t)} rank {r}" for t, r in pairs)
            return f"input {index} is sent {sent}: an OpenVINO input has one element type and one rank"
    return None


def _key(inputs: Signature) -> str:
    return "_".join(f"{TYPE_NAMES[pairs[0][0]]}-r{pairs[0][1]}" for pairs in inputs) or "none"


class IdentityModels:
    """Writes (once per signature) ``ROOT/<signature>/echo/model.xml`` and ``model.bin``: the graph named echo."""

    def __init__(self, root: Path) -> None:
        try:
            import openvino  # noqa: F401 - checked here, so a missing package is one clear error up front
        except ImportError as exc:
            raise OpenVINOMissing(f"the openvino package is not importable ({exc}): {INSTALL_HINT}") from exc
        self.root = Path(root)
        self._written: dict[str, Path] = {}

    def for_case(self, case: Case) -> Path:
        """The echo graph's directory for ``case`` (whose name is the graph's name); see ``not_expressible``."""
        why = not_expressible(case)
        if why is not None:
            raise ValueError(f"{case.name}: {why}")
        key = _key(case.inputs)
        if key not in self._written:
            self._written[key] = self._write(self.root / key / ECHO, case.inputs)
        return self._written[key]

    @staticmethod
    def _write(directory: Path, inputs: Signature) -> Path:
        import openvino as ov

        parameters = []
        for index, ((type_code, rank),) in enumerate(inputs):
            element_type = getattr(ov.Type, TYPE_NAMES[type_code])  # Type.f16 ... Type.i64: the witx names
            parameter = ov.opset13.parameter(ov.PartialShape([-1] * rank), element_type, name=f"input{index}")
            parameters.append(parameter)
        model = ov.Model([p.output(0) for p in parameters], parameters, ECHO)
        directory.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(directory / "model.xml"), compress_to_fp16=False)
        return directory


def library_dir() -> Path:
    import openvino

    return Path(openvino.__file__).parent / "libs"


def runtime_env(scratch: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: os.environ) with LD_LIBRARY_PATH leading to an unversioned ``libopenvino_c.so``.

    The symlink goes in ``scratch/lib``; the wheel's own folder follows it, so the libraries it loads next are
    found too. Where the wheel already has the unversioned name, nothing is linked.
    """
    out = dict(os.environ if env is None else env)
    libs = library_dir()
    folders = [str(libs)]
    if not (libs / "libopenvino_c.so").exists():
        versioned = sorted(libs.glob("libopenvino_c.so.*"))
        if not versioned:
            raise OpenVINOMissing(f"no libopenvino_c.so* in {libs}: {INSTALL_HINT}")
        link_dir = Path(scratch) / "lib"
        link_dir.mkdir(parents=True, exist_ok=True)
        link = link_dir / "libopenvino_c.so"
        if not link.exists():
            link.symlink_to(versioned[-1])
        folders.insert(0, str(link_dir))
    if out.get("LD_LIBRARY_PATH"):
        folders.append(out["LD_LIBRARY_PATH"])
    out["LD_LIBRARY_PATH"] = os.pathsep.join(folders)
    return out
