"""The property interface every graph has (wasi-nn PR 80): specs, parsing, and the Client and Host calls."""

from __future__ import annotations

import pytest

from wasinn_jupyter.host import ErrorCode, Host, PropertySpec, WasiNNError


def test_a_graph_without_properties_lists_none_and_refuses_a_set(host: Host) -> None:
    assert host.properties("echo") == {}
    client = host.client()
    graph = client.load_by_name("echo")
    assert client.list_properties(graph) == []
    assert client.get_property(graph, "precision") is None
    with pytest.raises(WasiNNError) as err:
        client.set_property(graph, "precision", "fp16")
    assert err.value.code is ErrorCode.INVALID_ARGUMENT and "has no property 'precision'" in err.value.message
    with pytest.raises(WasiNNError, match="has no property"):
        host.set_property("echo", "precision", "fp16")
    calls = [(r.call, r.guest, r.graph, r.outcome) for r in host.timeline.records()[-3:]]
    assert calls == [
        ("get_property", client.label, "echo", "ok"),
        ("set_property", client.label, "echo", "invalid-argument"),
        ("set_property", "host", "echo", "invalid-argument"),
    ]


def test_property_calls_on_a_handle_never_issued_are_invalid_argument(host: Host) -> None:
    client = host.client()
    for call in (lambda: client.list_properties(7), lambda: client.get_property(7, "x")):
        with pytest.raises(WasiNNError) as err:
            call()
        assert err.value.code is ErrorCode.INVALID_ARGUMENT


def test_host_graph_is_the_registered_object_and_unknown_names_are_not_found(host: Host) -> None:
    client = host.client()
    assert client.graphs.get(client.load_by_name("echo")) is host.graph("echo")
    with pytest.raises(WasiNNError) as err:
        host.properties("nope")
    assert err.value.code is ErrorCode.NOT_FOUND


@pytest.mark.parametrize(
    ("spec", "text", "parsed"),
    [
        (PropertySpec("p", "fp32", "choice", choices=("fp32", "fp16")), " fp16 ", "fp16"),
        (PropertySpec("n", "1", "int", minimum=1, maximum=8), "8", 8),
        (PropertySpec("t", "1.0", "float", minimum=0.0), "0.25", 0.25),
        (PropertySpec("b", "false", "bool"), "On", True),
        (PropertySpec("s", "", "text"), "anything at all", "anything at all"),
    ],
)
def test_spec_parses_accepted_values(spec: PropertySpec, text: str, parsed: object) -> None:
    assert spec.parse(text) == parsed


@pytest.mark.parametrize(
    ("spec", "text", "words"),
    [
        (PropertySpec("p", "fp32", "choice", choices=("fp32", "fp16")), "fp8", "one of fp32, fp16"),
        (PropertySpec("n", "1", "int", minimum=1, maximum=8), "9", "[1, 8]"),
        (PropertySpec("n", "1", "int", minimum=1), "1.5", "an integer"),
        (PropertySpec("t", "1.0", "float", minimum=0.0), "nan", "[0, inf]"),
        (PropertySpec("b", "false", "bool"), "maybe", "true or false"),
    ],
)
def test_spec_refuses_bad_values_with_invalid_argument(spec: PropertySpec, text: str, words: str) -> None:
    with pytest.raises(WasiNNError) as err:
        spec.parse(text)
    assert err.value.code is ErrorCode.INVALID_ARGUMENT and words in err.value.message
