"""WIT wasi:nn from real components in real wasmtime: resources, errors, limits, and a guest that misbehaves."""

from __future__ import annotations

import pytest

from wasinn_jupyter.conformance.components import WIT_TYPES, assemble_wit
from wasinn_jupyter.host import GuestError, GuestTrap, Session
from wasinn_jupyter.host.component import bindings
from wasinn_jupyter.host.component.linking import GUEST_TO_HOST_LIST_LIMIT, WitComponent

U8 = WIT_TYPES["u8"]


@pytest.fixture
def echo(session: Session):  # type: ignore[no-untyped-def]
    return session.compile(assemble_wit(), name="wit_echo.wasm")


def binding_of(guest) -> bindings.WitBinding:  # type: ignore[no-untyped-def]
    linking = guest._linking
    assert isinstance(linking, WitComponent)
    return linking.binding


def test_a_component_is_linked_over_wit(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    assert echo.kind == "component" and echo.nn_abi == "wit"
    assert "wasi:nn/tensor@0.2.0-rc-2024-10-28" in echo.nn_imports
    with session.instantiate(echo) as guest:
        assert guest._linking.abi == "wit"
        assert guest.call("echo", WIT_TYPES["f32"], 2, 2, 3, 0, 0, 0, watch=False) == 0


def test_every_resource_is_freed_and_the_budget_given_back(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    with session.instantiate(echo) as guest:
        for export, args in (("multi", (3, 0x410, 0x752)), ("contexts", (4, 3)), ("outputs-outlive", (2,))):
            assert guest.call(export, *args, watch=False) == 0
            table = binding_of(guest)
            assert not table.tensors.items and not table.graphs.items and not table.contexts.items
            assert not table.errors.items
            assert guest.client.budget.used == 0
            assert not guest.client.contexts.clear() and not guest.client.graphs.clear()


def test_calls_are_recorded_with_their_wit_names_and_errors(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    with session.instantiate(echo) as guest:
        assert guest.call("unknown-name", 0, watch=False) == 0
        calls = [r for r in session.host.timeline.records() if r.kind == "call" and r.guest_id == guest.id]
        assert calls[0].call == "load_by_name" and calls[0].outcome == "not-found"
        assert "no graph named 'no-such-graph'" in (guest.client.last_error or "")


@pytest.mark.parametrize(
    ("export", "args"),
    [
        ("mismatch", (WIT_TYPES["f32"], 2, 1)),  # data one byte longer than its dims
        ("mismatch", (WIT_TYPES["f64"], 0, (-8) & 0xFFFFFFFF)),  # a scalar with no data
        ("bad-dims", (U8, 0x10000, 0x10000, 0)),  # 2**32 elements, 0 bytes
        ("duplicate-name", ()),
        ("no-inputs", ()),
    ],
)
def test_bad_inputs_answer_invalid_argument_and_the_guest_goes_on(session: Session, echo, export, args) -> None:  # type: ignore[no-untyped-def]
    with session.instantiate(echo) as guest:
        assert guest.call(export, *args, watch=False) == 0  # the guest checked the code and then still worked
        assert guest.client.budget.used == 0


def test_a_list_past_wasmtimes_cap_is_a_clear_trap_and_the_instance_says_it_is_dead(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    with session.instantiate(echo) as guest:
        with pytest.raises(GuestTrap, match="hostcall fuel") as caught:
            guest.call("echo", U8, 1, GUEST_TO_HOST_LIST_LIMIT + 1, 0, 0, 0, 0, watch=False)
        assert "witx" in str(caught.value)  # the way around it
        with pytest.raises(GuestError, match="cannot be entered again: it trapped earlier"):
            guest.call("echo", U8, 1, 4, 0, 0, 0, 0, watch=False)
        assert guest.client.budget.used == 0
    with session.instantiate(echo) as fresh:  # a new instance of the same component works
        assert fresh.call("echo", U8, 1, 4, 0, 0, 0, 0, watch=False) == 0


def test_just_under_the_cap_passes(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    with session.instantiate(echo) as guest:
        assert guest.call("echo", U8, 1, 2 << 20, 0, 0, 0, 0, watch=False) == 0


DOUBLE_DROP = """
(component
;; @imports
  (core func $drop-t (canon resource.drop $tensor-t))
  (core module $M
    (import "nn" "drop" (func $drop (param i32)))
    (func (export "twice") (call $drop (i32.const 1)) (call $drop (i32.const 1))))
  (core instance $m (instantiate $M (with "nn" (instance (export "drop" (func $drop-t))))))
  (func (export "twice") (canon lift (core func $m "twice")))
)
"""


def test_dropping_a_resource_twice_or_never_made_traps_in_the_guest_only(session: Session) -> None:
    from tests.host.component.conftest import imports

    text = DOUBLE_DROP.replace(";; @imports\n", imports().split("(component\n", 1)[1].split("  ;; Memory")[0])
    module = session.compile(text, name="double-drop")
    with session.instantiate(module) as guest:
        with pytest.raises(GuestTrap, match=r"handle|index|resource"):
            guest.call("twice", watch=False)
    with session.instantiate(session.compile(assemble_wit())) as guest:  # the host is fine
        assert guest.call("echo", U8, 1, 3, 0, 0, 0, 0, watch=False) == 0


def test_too_many_live_tensors_is_a_trap_that_names_the_limit(session: Session, echo, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(bindings, "MAX_TENSORS", 4)
    with session.instantiate(echo) as guest:
        assert guest.call("multi", 2, 0x11, 0x22, watch=False) == 0  # 2 inputs + 2 outputs at most live
        with pytest.raises(GuestTrap, match="holds 4 live tensor resources"):
            guest.call("multi", 5, 0x11111, 0x22222, watch=False)
        assert guest.client.budget.used >= 0


def test_closing_the_guest_frees_what_it_held(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    guest = session.instantiate(echo)
    with pytest.raises(GuestTrap):
        guest.call("echo", U8, 1, 3 << 20, 0, 0, 0, 0, watch=False)
    guest.close()
    assert guest.client.budget.used == 0 and not guest.client.graphs.clear()


def test_an_output_too_large_for_a_wit_list_is_refused_before_the_host_allocates(  # type: ignore[no-untyped-def]
    session: Session, echo, monkeypatch
) -> None:
    monkeypatch.setattr(bindings, "MAX_DATA_TO_GUEST", 1000)
    with session.instantiate(echo) as guest:
        assert guest.call("echo", U8, 1, 1000, 0, 0, 0, 0, watch=False) == 0
        with pytest.raises(GuestTrap, match=r"tensor.data: 1,001 bytes is over the 1,000.*witx"):
            guest.call("echo", U8, 1, 1001, 0, 0, 0, 0, watch=False)


def test_an_output_whose_copy_the_budget_cannot_cover_is_refused(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    session.host.limits.max_guest_bytes = 64 << 10  # 64 KiB: a 4 KiB output would take 128 KiB of values
    with session.instantiate(echo) as guest:
        with pytest.raises(GuestTrap, match="32 bytes per byte"):
            guest.call("echo", U8, 1, 4096, 0, 0, 0, 0, watch=False)


WRONG_TYPE = """
(component
  (import "wasi:nn/graph@0.2.0-rc-2024-10-28" (instance $graph
    (export "load-by-name" (func (param "name" u32) (result u32)))))
  (core func $lbn (canon lower (func $graph "load-by-name")))
  (core module $M
    (import "nn" "load-by-name" (func $lbn (param i32) (result i32)))
    (func (export "go") (result i32) (call $lbn (i32.const 7))))
  (core instance $m (instantiate $M (with "nn" (instance (export "load-by-name" (func $lbn))))))
  (func (export "go") (result u32) (canon lift (core func $m "go")))
)
"""


def test_an_import_of_another_type_traps_with_the_hosts_reason(session: Session) -> None:
    with session.instantiate(session.compile(WRONG_TYPE, name="wrong-type")) as guest:
        with pytest.raises(GuestTrap, match="the host could not serve load-by-name"):
            guest.call("go", watch=False)


def test_arguments_of_the_wrong_type_are_refused_and_the_instance_lives_on(session: Session, echo) -> None:  # type: ignore[no-untyped-def]
    with session.instantiate(echo) as guest:
        with pytest.raises(TypeError):
            guest.call("echo", "f32", 1, 3, 0, 0, 0, 0, watch=False)
        assert guest.call("echo", U8, 1, 3, 0, 0, 0, 0, watch=False) == 0
