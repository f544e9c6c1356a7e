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
