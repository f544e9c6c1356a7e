"""%%wasinn guest NAME --lang python: a cell becomes a component (componentize-py) that %wasinn run runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.host.component.python_guest import CACHE, CELL, needs_componentize_py


def test_a_python_cell_is_a_guest_that_runs(run: Any, ip: Any, tmp_path: Any) -> None:
    needs_componentize_py()
    ip.run_line_magic("config", f"WasinnMagics.cache_dir = {str(CACHE)!r}")  # the build the host tests made
    run("%wasinn load echo echo")
    cell = run("%%wasinn guest pyguest --lang python\n" + CELL)
    assert cell.ok, cell.err
    assert "guest 'pyguest': python" in cell.out and "%wasinn run pyguest" in cell.out
    (tmp_path / "b.txt").write_text("y")
    cell = run(f"%wasinn run --env GREETING=hey --dir {tmp_path}::/data pyguest one")
    assert cell.ok, cell.err
    assert "argv ['one'] env hey" in cell.out and "files ['b.txt']" in cell.out
    assert "echo [2, 3] FP32 True" in cell.out
    failed = run("%wasinn run pyguest fail")
    assert not failed.ok and "exited with code 1" in (failed.err + failed.out)
    # %%wasinn compute through it: the cell defines no compute(), so the guest forwards to wasi:nn's
    ip.user_ns["np"] = np
    cell = run("%%wasinn compute echo --guest pyguest\nnp.arange(6, dtype=np.float32).reshape(2, 3)")
    assert cell.ok, cell.err
    assert cell.value.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
