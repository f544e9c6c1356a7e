"""What a guest opened is freed: when it says so, when it is closed, and when it is simply dropped."""

from __future__ import annotations

import gc
import weakref

from wasinn_jupyter.host import Session

HOARDER = r"""(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $lbn (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "echo")
  ;; opens contexts until the host refuses; returns count * 1000 + the errno that stopped it
  (func (export "hoard") (param $max i32) (result i32) (local $n i32) (local $e i32)
    (drop (call $lbn (i32.const 0) (i32.const 4) (i32.const 100)))
    (block $done
      (loop $more
        (local.set $e (call $init (i32.load (i32.const 100)) (i32.const 104)))
        (br_if $done (local.get $e))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $more (i32.lt_u (local.get $n) (local.get $max)))))
    (i32.add (i32.mul (local.get $n) (i32.const 1000)) (local.get $e)))
)"""


def test_a_guest_opening_100000_contexts_meets_the_limit(session: Session) -> None:
    guest = session.instantiate(session.compile(HOARDER))
    assert guest.call("hoard", 100_000, watch=False) == 4096 * 1000 + 7  # max_contexts, then too_large
    assert "free some" in (guest.client.last_error or "")
    guest.close()
    assert len(guest.client.contexts) == 0 and len(guest.client.graphs) == 0


def test_a_dropped_guest_frees_its_contexts(session: Session) -> None:
    guest = session.instantiate(session.compile(HOARDER))
    assert guest.call("hoard", 10, watch=False) == 10_000
    contexts = [weakref.ref(ctx) for _, ctx in guest.client.contexts]
    assert len(contexts) == 10
    del guest
    gc.collect()
    assert all(ref() is None for ref in contexts)
