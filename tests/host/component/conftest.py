"""Component guests for these tests, in WAT: the wasi:nn imports of the conformance guest, then a body."""

from __future__ import annotations

from pathlib import Path

from wasinn_jupyter.conformance.components import GUESTS_DIR

GUESTS = Path(__file__).parent / "guests"
_MEM_MARK = "  ;; Memory and cabi_realloc"

PROPERTY_METHODS = """
    (export "[method]graph.list-properties" (func (param "self" (borrow $g)) (result (list string))))
    (export "[method]graph.get-property"
      (func (param "self" (borrow $g)) (param "name" string) (result (option string))))
    (export "[method]graph.set-property"
      (func (param "self" (borrow $g)) (param "name" string) (param "value" string) (result (result (error string)))))
"""
PROMPT_IMPORT = """
  (import "wasi:nn/prompt@0.2.0-rc-2024-10-28" (instance $prompt
    (alias outer 1 $graph-t (type $g))
    (export "graph" (type $g-e (eq $g)))
    (export "context" (type $ctx (sub resource)))
    (export "[method]context.compute"
      (func (param "self" (borrow $ctx)) (param "prompt" string) (result (result string (error string)))))
    (export "init" (func (param "graph" (borrow $g-e)) (result (own $ctx))))
  ))
  (alias export $prompt "context" (type $prompt-ctx))
"""


def imports(phase3: bool = False) -> str:
    """The import section of the conformance component (with the PR 79/80 additions when ``phase3``)."""
    text = (GUESTS_DIR / "wit_echo.wat").read_text()
    head = text[: text.index(_MEM_MARK)]
    if phase3:
        anchor = '    (export "load-by-name"'
        head = head.replace(anchor, PROPERTY_METHODS.strip("\n") + "\n" + anchor, 1)
        head += PROMPT_IMPORT
    return head


def guest(name: str) -> str:
    """``guests/NAME.wat``: its ``;; @imports`` or ``;; @imports-phase3`` line becomes the import section."""
    text = (GUESTS / f"{name}.wat").read_text()
    if ";; @imports-phase3\n" in text:
        return text.replace(";; @imports-phase3\n", imports(phase3=True).split("(component\n", 1)[1], 1)
    return text.replace(";; @imports\n", imports().split("(component\n", 1)[1], 1)
