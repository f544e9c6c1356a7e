"""What a component guest sends that the host keeps (an error resource's message until it is dropped, the timeline's
records of its calls) is bounded: a graph name of a megabyte is refused as witx refuses it, and an error message
that quotes a long name is cut, so 4,096 undropped errors or 100,000 records cannot hold gigabytes."""

from __future__ import annotations

from wasinn_jupyter.host import ErrorCode, Host, Session
from wasinn_jupyter.host.abi.witx import MAX_NAME
from wasinn_jupyter.host.component import bindings
from wasinn_jupyter.host.component.linking import WitComponent

GUEST = """
(component
;; @imports
  (core module $Mem
    (memory (export "memory") 64)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (alias core export $mem "realloc" (core func $realloc))
  (core func $lbn (canon lower (func $graph "load-by-name") (memory $memory) (realloc $realloc) string-encoding=utf8))
  (core module $M
    (import "nn" "memory" (memory 1))
    (import "nn" "lbn" (func $lbn (param i32 i32 i32)))
    ;; load-by-name of a name of n NUL bytes, count times, no error dropped
    (func (export "go") (param $n i32) (param $count i32) (result i32)
      (local $i i32)
      (loop $l
        (call $lbn (i32.const 16) (local.get $n) (i32.const 0))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $count))))
      (local.get $i)))
  (core instance $m (instantiate $M (with "nn" (instance (export "memory" (memory $memory))
                                                         (export "lbn" (func $lbn))))))
  (func (export "go") (param "n" u32) (param "count" u32) (result u32) (canon lift (core func $m "go")))
)
"""


def test_an_error_keeps_a_bounded_message() -> None:
    from tests.host.component.conftest import imports

    text = GUEST.replace(";; @imports\n", imports().split("(component\n", 1)[1].split("  ;; Memory")[0])
    session = Session(Host())
    with session.instantiate(session.compile(text, name="long-names")) as guest:
        assert guest.call("go", MAX_NAME, 3, watch=False) == 3  # the longest name: not_found, quoting it
        assert isinstance(guest._linking, WitComponent)
        kept = list(guest._linking.binding.errors.items.values())
        assert len(kept) == 3
        for err in kept:
            assert err.code.name == "NOT_FOUND"
            assert len(err.message) <= bindings.MAX_ERROR_DATA and "cut" in err.message


def test_a_megabyte_name_is_invalid_argument_and_not_recorded() -> None:
    from tests.host.component.conftest import imports

    text = GUEST.replace(";; @imports\n", imports().split("(component\n", 1)[1].split("  ;; Memory")[0])
    host = Host()
    session = Session(host)
    with session.instantiate(session.compile(text, name="long-names")) as guest:
        assert guest.call("go", 1 << 20, 2, watch=False) == 2
        assert isinstance(guest._linking, WitComponent)
        kept = list(guest._linking.binding.errors.items.values())
        assert [e.code for e in kept] == [ErrorCode.INVALID_ARGUMENT] * 2
        assert "over the limit of 4096" in kept[0].message
    assert all(len(str(r.graph or "")) <= MAX_NAME for r in host.timeline.records())
