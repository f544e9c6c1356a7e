"""A Python guest's entry points: wasi:cli/run's ``run`` runs the cell (``wasinn_cell.py``) as a script, and
``wasinn:guest/compute``'s ``compute`` serves ``%%wasinn compute --guest``: the cell's own ``compute(graph,
inputs)`` where it defines one (its top level runs first, as a module named ``wasinn_cell``), else wasi:nn's
compute on the graph by name.

componentize-py runs this module when it builds the component and snapshots the interpreter. So the cell's text
is read here, at build time (with the modules it imports, so that they are in the snapshot), and executed by
``run``, at run time. An uncaught exception prints its traceback and makes ``run`` return its error (exit code 1);
``sys.exit(0)`` is a normal end.
"""

import ast
import importlib
import os
import sys
import traceback

import nn
from componentize_py_types import Err
from wit_world import exports

CELL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasinn_cell.py")
with open(CELL) as _f:
    SOURCE = _f.read()


def _imported(source):
    names = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


for _name in sorted(_imported(SOURCE)):
    try:
        importlib.import_module(_name)
    except Exception:  # noqa: BLE001 - the cell will say so itself when it runs
        pass

CODE = compile(SOURCE, "cell.py", "exec")


class Compute(exports.Compute):
    def compute(self, graph, inputs):
        try:
            scope = {"__name__": "wasinn_cell", "__file__": "cell.py"}
            exec(CODE, scope)
            own = scope.get("compute")
            outputs = own(graph, dict(inputs)) if callable(own) else nn.compute(nn.load_by_name(graph), dict(inputs))
            return list(outputs.items()) if isinstance(outputs, dict) else list(outputs)
        except nn.WasiNNError as exc:
            raise Err(str(exc)) from None
        except BaseException as exc:  # noqa: BLE001 - the guest's own error: its traceback, then compute's error
            traceback.print_exc()
            raise Err(f"{type(exc).__name__}: {exc}") from None


class Run(exports.Run):
    def run(self) -> None:
        try:
            exec(CODE, {"__name__": "__main__", "__file__": "cell.py"})
        except SystemExit as exc:
            if exc.code not in (None, 0):
                if not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
                raise Err(None) from None
        except BaseException:  # noqa: BLE001 - the guest's own error: its traceback, then run's error
            traceback.print_exc()
            raise Err(None) from None
