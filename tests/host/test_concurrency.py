"""Two guests in two threads against one host and one named graph."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from wasinn_jupyter.host import GuestTrap, Host, Session

# A guest that runs load_by_name("affine") once, then `step` forwards a 4-float input at 1024 to an output at 2048.
GUEST = r"""(module
  (import "wasi_ephemeral_nn" "load_by_name" (func $lbn (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "affine")
  (data (i32.const 16) "\01\00\00\00\04\00\00\00")
  (data (i32.const 32) "\10\00\00\00\02\00\00\00\01\00\00\00\00\04\00\00\10\00\00\00")
  (func (export "open") (result i32) (local $e i32)
    (local.set $e (call $lbn (i32.const 0) (i32.const 6) (i32.const 100)))
    (if (local.get $e) (then (return (local.get $e))))
    (call $init (i32.load (i32.const 100)) (i32.const 104)))
  (func (export "step") (result i32) (local $e i32)
    (local.set $e (call $set (i32.load (i32.const 104)) (i32.const 0) (i32.const 32)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $e (call $compute (i32.load (i32.const 104))))
    (if (local.get $e) (then (return (local.get $e))))
    (call $get (i32.load (i32.const 104)) (i32.const 0) (i32.const 2048) (i32.const 64) (i32.const 108)))
  (func (export "boom") (unreachable))
)"""


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3).eval()


def test_two_guests_share_one_graph_and_a_trap_stays_in_its_guest(model) -> None:
    host = Host()
    host.register("affine", model)
    session = Session(host)
    module = session.compile(GUEST)
    errors: list[BaseException] = []
    traps = []

    def worker(seed: int, trap_every: int) -> None:
        try:
            guest = session.instantiate(module)
            memory = guest.instance.exports(guest.store)["memory"]
            assert guest.call("open", watch=False) == 0
            rng = np.random.default_rng(seed)
            for i in range(300):
                x = rng.standard_normal(4).astype(np.float32)
                memory.write(guest.store, x.tobytes(), 1024)
                assert guest.call("step", watch=False) == 0, guest.client.last_error
                got = np.frombuffer(bytes(memory.read(guest.store, 2048, 2060)), np.float32)
                with torch.inference_mode():
                    np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), rtol=1e-6)
                if trap_every and i % trap_every == 0:
                    try:
                        guest.call("boom", watch=False)
                    except GuestTrap as trap:
                        traps.append(trap)
                        guest = session.instantiate(module)  # a trapped guest is replaced, the host goes on
                        memory = guest.instance.exports(guest.store)["memory"]
                        assert guest.call("open", watch=False) == 0
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(1, 0)), threading.Thread(target=worker, args=(2, 50))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(traps) == 6
    steps = [r for r in host.timeline.records() if r.call == "compute"]
    assert len(steps) == 600 and all(r.ok and r.graph == "affine" for r in steps)
