"""A tensor the constructor cannot make (rank past MAX_RANK) is still kept until compute says why: the dims a guest
gave it are host memory, so they are charged to its budget, compactly. Before, each such tensor held up to ~2.7
million dims as Python ints for a charge of 256 bytes, and 65,536 of them could be live."""

from __future__ import annotations

import pytest

from wasinn_jupyter.host import GuestTrap, Host, Limits, Session
from wasinn_jupyter.host.component.linking import WitComponent

GUEST = """
(component
;; @imports
  (core module $Mem
    (memory (export "memory") 128)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "memory" (core memory $memory))
  (core func $ctor (canon lower (func $tensor "[constructor]tensor") (memory $memory)))
  (core module $M
    (import "nn" "memory" (memory 1))
    (import "nn" "ctor" (func $ctor (param i32 i32 i32 i32 i32) (result i32)))
    ;; count tensors of n zero dims (type u8, no data), none dropped
    (func (export "make") (param $n i32) (param $count i32) (result i32)
      (local $i i32)
      (loop $l
        (drop (call $ctor (i32.const 0) (local.get $n) (i32.const 4) (i32.const 0) (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $count))))
      (local.get $i)))
  (core instance $m (instantiate $M (with "nn" (instance (export "memory" (memory $memory))
                                                         (export "ctor" (func $ctor))))))
  (func (export "make") (param "n" u32) (param "count" u32) (result u32) (canon lift (core func $m "make")))
)
"""


def test_bad_tensors_dims_are_charged_to_the_guests_budget() -> None:
    from tests.host.component.conftest import imports

    text = GUEST.replace(";; @imports\n", imports().split("(component\n", 1)[1].split("  ;; Memory")[0])
    session = Session(Host(limits=Limits(max_guest_bytes=16 << 20)))
    module = session.compile(text, name="bad-tensor-dims")
    dims = 1 << 20  # 8 MiB as a tuple of ints, 4 MiB as u32s: well past the rank limit, under wasmtime's list cap
    with session.instantiate(module) as guest:
        assert guest.call("make", dims, 1, watch=False) == 1
        binding = guest._linking.binding
        assert isinstance(guest._linking, WitComponent)
        assert guest.client.budget.used >= 4 * dims  # the dims are paid for
        with pytest.raises(GuestTrap, match="tensor not created"):
            guest.call("make", dims, 10, watch=False)
        assert len(binding.tensors.items) <= 4
    assert guest.client.budget.used == 0
