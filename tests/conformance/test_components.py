"""The echo suite over WIT: every case passes on our host, reported with the witx cases, and a broken host fails."""

from __future__ import annotations

import torch

from wasinn_jupyter.conformance import components, hosts
from wasinn_jupyter.conformance.components import WIT_TYPES, describe_wit, run_wit_suite, wit_cases
from wasinn_jupyter.host import Host, Session


def test_every_wit_case_passes_on_this_host() -> None:
    results = run_wit_suite()
    failed = [(c.name, detail) for c, status, detail, _ in results if status != "pass"]
    assert not failed
    groups = {c.group for c, *_ in results}
    assert {"wit/types", "wit/shapes", "wit/multi", "wit/reuse", "wit/resources", "wit/names", "wit/tensors"} <= groups
    assert any(c.args[0] == WIT_TYPES["bf16"] for c, *_ in results if c.export == "echo")  # BF16: WIT only


def test_wit_cases_are_reported_with_the_witx_ones_and_say_the_limit() -> None:
    with Session(Host()) as session:
        report = hosts.run_host(hosts.WasinnHost(session), select="types/u8", wit=True)
    names = [r.name for r in report.results]
    assert "types/u8[2,3]" in names and "wit/types/u8[2,3]" in names
    assert report.ok
    assert any("2.67 MiB" in note for note in report.host_info["notes"])


class OffByOne(torch.nn.Module):
    """Not an echo: its output differs from its input."""

    def forward(self, in0: torch.Tensor) -> torch.Tensor:
        return in0 + 1


def test_a_host_that_breaks_an_echo_fails_the_case_in_words() -> None:
    with Session(Host()) as session:
        session.host.register("echo", OffByOne())
        results = run_wit_suite(session=session, select="wit/types/f32[2,3]")
    [(_case, status, detail, _)] = results
    assert status == "fail" and "reading an output (the call under test)" in detail


def test_codes_in_words() -> None:
    case = next(c for c in wit_cases() if c.export == "unknown-name")
    assert describe_wit(101_000_000 + 92_000_000 + 1, case).endswith(
        "invalid-argument; expected not-found, with a message"
    )
    assert "no-error" == components.kind_of_wit(892_000_000)


def test_cases_say_what_each_input_is_sent_for_typed_models() -> None:
    table = {c.name: c for c in wit_cases()}
    f32, bf16 = WIT_TYPES["f32"], WIT_TYPES["bf16"]
    assert table["wit/types/bf16[2,3]"].inputs == (((bf16, 2),),)
    assert table["wit/multi/2-inputs-f32"].inputs == (((f32, 2),), ((f32, 2),))
    assert table["wit/multi/2-inputs-f32"].needs == ("several-inputs",)
    # the mismatch is followed by an f32 [2,3] round trip in the same context: one model serves f32[2,3] only
    assert table["wit/tensors/f32[2,3]-data-len+1"].inputs == (((f32, 2),),)
    assert table["wit/tensors/u8[0]-data-len+1"].inputs == (((WIT_TYPES["u8"], 1), (f32, 2)),)
    assert components.openvino_not_expressible(table["wit/tensors/f32[2,3]-data-len+1"]) is None
    why = components.openvino_not_expressible(table["wit/tensors/u8[0]-data-len+1"])
    assert why == "input 0 is sent u8 rank 1, f32 rank 2: an OpenVINO input has one element type and one rank"
    assert "TorchScript" in (components.openvino_not_expressible(table["wit/load/pytorch-f32"]) or "")
    assert table["wit/resources/getters-u8[]"].inputs == ()  # no compute: any echo graph serves it
    assert components.wave_call(table["wit/tensors/f32[2,3]-data-len-1"]) == "mismatch(1, 2, 4294967295)"
    assert components.wave_call(table["wit/inputs/no-inputs"]) == "no-inputs()"


def test_the_names_unchecked_guest_differs_only_in_that() -> None:
    checked, unchecked = components.wit_guest_wat(), components.wit_guest_wat(check_names=False)
    assert checked != unchecked and components.NAMES_CHECKED in checked and components.NAMES_CHECKED not in unchecked
    case = next(c for c in wit_cases() if c.name == "wit/types/f32[2,3]")
    with Session(Host()) as session:
        session.host.register("echo", "echo")
        module = session.compile(components.assemble_wit(check_names=False), name="any-names.wasm")
        assert components.run_wit_case(session, module, case)[0] == "pass"
        session.host.unregister("echo")
        session.host.register("echo", OffByOne())
        status, detail, kind, _ = components.run_wit_case(session, module, case)
    assert (status, kind) == ("fail", "bytes") and "output bytes differ at offset 0" in detail


def test_a_command_host_without_a_wit_command_reports_wit_cases_not_expressible() -> None:
    host = hosts.CommandHost("true {wasm} {invoke} {args}")
    status, why = host.verdict(wit_cases()[0]) or ("", "")
    assert status == "not expressible" and "witx core modules only" in why
