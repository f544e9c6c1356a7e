"""A guest's metadata JSON (input 1) with numbers past 64 bits: invalid_argument at set_input, as the graph
properties' own bounds say, not an overflow deep in torch that the host reports as an internal error."""

from __future__ import annotations

import numpy as np
import pytest

from wasinn_jupyter.host import ErrorCode, Host, WasiNNError
from wasinn_jupyter.host.backends.lm import U8


@pytest.mark.parametrize("key", ["seed", "n-predict", "ctx-size", "top-k"])
def test_a_number_past_64_bits_is_invalid_argument(tiny_lm_dir: object, key: str) -> None:
    host = Host()
    host.register("chat", str(tiny_lm_dir))
    client = host.client("hostile")
    ctx = client.init_execution_context(client.load_by_name("chat"))
    raw = f'{{"{key}": {2**70}}}'.encode()
    with pytest.raises(WasiNNError) as info:
        client.set_input_bytes(ctx, 1, (len(raw),), U8, np.frombuffer(raw, dtype=np.uint8))
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert key in info.value.message


def test_the_largest_seed_still_answers(tiny_lm_dir: object) -> None:
    host = Host()
    host.register("chat", str(tiny_lm_dir))
    client = host.client("g")
    ctx = client.init_execution_context(client.load_by_name("chat"))
    raw = f'{{"seed": {2**63 - 1}, "n-predict": 3}}'.encode()
    client.set_input_bytes(ctx, 1, (len(raw),), U8, np.frombuffer(raw, dtype=np.uint8))
    assert isinstance(client.prompt(ctx, "the cat"), str)


def _prompt_with(tiny_lm_dir: object, metadata: str) -> str:
    host = Host()
    host.register("chat", str(tiny_lm_dir))
    client = host.client("g")
    ctx = client.init_execution_context(client.load_by_name("chat"))
    raw = metadata.encode()
    client.set_input_bytes(ctx, 1, (len(raw),), U8, np.frombuffer(raw, dtype=np.uint8))
    return client.prompt(ctx, "the cat")


def test_a_vanishing_temperature_is_greedy_not_an_error(tiny_lm_dir: object) -> None:
    """1e-300 overflows the scaled scores to inf; it answers as temperature 0 does (the most likely tokens)."""
    assert _prompt_with(tiny_lm_dir, '{"temp": 1e-300, "n-predict": 6}') == _prompt_with(
        tiny_lm_dir, '{"temp": 0, "n-predict": 6}'
    )


def test_seed_minus_one_means_random_as_the_property_says(tiny_lm_dir: object) -> None:
    assert isinstance(_prompt_with(tiny_lm_dir, '{"seed": -1, "n-predict": 3}'), str)
    with pytest.raises(WasiNNError) as info:
        _prompt_with(tiny_lm_dir, '{"seed": -2, "n-predict": 3}')
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_the_prompt_token_ids_are_charged_and_released(tiny_lm_dir: object) -> None:
    from wasinn_jupyter.host.backends.lm import TOKEN_BYTES

    host = Host()
    host.register("chat", str(tiny_lm_dir))
    client = host.client("g")
    ctx = client.init_execution_context(client.load_by_name("chat"))
    before = client.budget.used
    prompt = b"the cat sat on the mat"
    client.set_input_bytes(ctx, 0, (len(prompt),), U8, np.frombuffer(prompt, dtype=np.uint8))
    tokens = len(client.contexts.get(ctx).prompt_ids)
    assert tokens > 0 and client.budget.used - before >= len(prompt) + TOKEN_BYTES * tokens
    client.finalize_execution_context(ctx)
    assert client.budget.used == before
