"""Fixtures for the guest tests: a session with the echo graph, a private compile cache, and guest sources.

Every guest here goes through the real toolchain and the real host ABI; Rust and AssemblyScript tests skip, with
the install hint as the reason, where their compiler is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasinn_jupyter.guests import Compiled, ToolchainMissing, compile_source
from wasinn_jupyter.guests.compile import toolchain
from wasinn_jupyter.host import Guest, Session

# A command: runs the echo graph on a 2x2 f32 tensor with a buffer too small at first (the too_large retry), and
# prints what came back. argv[1] names the graph.
C_ECHO_COMMAND = r"""
#include <stdio.h>
#include <string.h>
#include "wasi_nn.h"

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "echo";
    wasi_nn_graph_t graph;
    wasi_nn_context_t ctx;
    wasi_nn_errno_t err = wasi_nn_load_by_name(name, strlen(name), &graph);
    if (err) {
        fprintf(stderr, "load_by_name(%s): %s\n", name, wasi_nn_errno_name(err));
        return 2;
    }
    wasi_nn_init_execution_context(graph, &ctx);
    float data[4] = {1.5f, -2.0f, 3.25f, 4.0f};
    uint32_t dims[2] = {2, 2};
    wasi_nn_tensor_t t = {dims, 2, WASI_NN_TYPE_F32, (const uint8_t *)data, sizeof data};
    if ((err = wasi_nn_set_input(ctx, 0, &t)) || (err = wasi_nn_compute(ctx))) return 3;
    float out[4];
    uint32_t written = 0;
    err = wasi_nn_get_output(ctx, 0, (uint8_t *)out, 4, &written);
    printf("first try: %s, needs %u bytes\n", wasi_nn_errno_name(err), written);
    err = wasi_nn_get_output(ctx, 0, (uint8_t *)out, sizeof out, &written);
    printf("%s:", wasi_nn_errno_name(err));
    for (int i = 0; i < 4; i++) printf(" %g", out[i]);
    printf("\n");
    return 0;
}
"""


RUST_ECHO_COMMAND = r"""
mod wasi_nn;

fn main() {
    let graph = wasi_nn::load_by_name("echo").expect("load_by_name");
    let mut ctx = graph.init_execution_context().unwrap();
    let data: Vec<u8> = [1.5f32, -2.0, 3.25, 4.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    ctx.set_input(0, wasi_nn::TensorType::F32, &[2, 2], &data).unwrap();
    ctx.compute().unwrap();
    let out = ctx.get_output_vec(0).unwrap();
    let floats: Vec<f32> = out.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    println!("rust: {:?}", floats);
    match wasi_nn::load_by_name("missing") {
        Err(e) => println!("missing: {}", e),
        Ok(_) => println!("missing: found?"),
    }
}
"""

# A reactor that follows the compute convention by passing everything through (outputs typed by the graph).
RUST_FORWARD = r"""
mod wasi_nn;
use wasi_nn::*;

static mut ARENA: Vec<u8> = Vec::new();
static mut OUTS: Vec<Tensor> = Vec::new();
static mut BUFS: Vec<Vec<u8>> = Vec::new();

#[no_mangle]
pub extern "C" fn wasinn_alloc(size: u32) -> *mut u8 {
    unsafe {
        ARENA = vec![0u8; size as usize];
        ARENA.as_mut_ptr()
    }
}

#[no_mangle]
pub unsafe extern "C" fn wasinn_compute(
    name: *const u8, len: u32, inputs: *const Tensor, n: u32, result: *mut ComputeResult,
) -> u32 {
    let name = std::str::from_utf8(std::slice::from_raw_parts(name, len as usize)).unwrap();
    let graph = match load_by_name(name) { Ok(g) => g, Err(e) => return e.0 };
    let mut ctx = match graph.init_execution_context() { Ok(c) => c, Err(e) => return e.0 };
    for i in 0..n {
        if let Err(e) = ctx.set_input_raw(i, &*inputs.add(i as usize)) { return e.0; }
    }
    if let Err(e) = ctx.compute() { return e.0; }
    BUFS.clear();
    OUTS.clear();
    let mut i = 0;
    loop {
        match ctx.get_output_vec(i) {
            Ok(b) => BUFS.push(b),
            Err(Error(errno::INVALID_ARGUMENT)) => break,
            Err(e) => return e.0,
        }
        i += 1;
    }
    for b in BUFS.iter() {
        let (data, data_len) = (b.as_ptr(), b.len() as u32);
        OUTS.push(Tensor { dims: std::ptr::null(), dims_len: 0, ty: TYPE_FROM_GRAPH, data, data_len });
    }
    *result = ComputeResult { n_outputs: OUTS.len() as u32, outputs: OUTS.as_ptr(), ctx: ctx.0 };
    0
}
"""

AS_COMMAND = r"""
@external("wasi_ephemeral_nn", "load_by_name")
declare function load_by_name(name: usize, len: u32, out: usize): u32;
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: u32, iovs: usize, n: u32, written: usize): u32;

function print(s: string): void {
  const buf = String.UTF8.encode(s);
  const iov = memory.data(16);
  store<u32>(iov, changetype<usize>(buf));
  store<u32>(iov, buf.byteLength, 4);
  fd_write(1, iov, 1, iov + 8);
}

export function _start(): void {
  const name = String.UTF8.encode("echo");
  const err = load_by_name(changetype<usize>(name), name.byteLength, memory.data(4));
  print("assemblyscript: load_by_name errno " + err.toString() + "\n");
}
"""


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wasinn-cache")


@pytest.fixture
def build(cache_dir: Path) -> Callable[..., Compiled]:
    """``build(source, lang, name=...)``: compile into the test session's cache."""

    def make(source: str, lang: str, name: str = "guest", **kwargs: object) -> Compiled:
        return compile_source(source, lang, name=name, cache_dir=cache_dir, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def instantiate(session: Session) -> Iterator[Callable[..., Guest]]:
    guests: list[Guest] = []

    def make(compiled: Compiled, **kwargs: object) -> Guest:
        guest = session.instantiate(session.compile(compiled.wasm), **kwargs)  # type: ignore[arg-type]
        guests.append(guest)
        if "_initialize" in guest.exports():
            guest.call("_initialize")
        return guest

    yield make
    for guest in guests:
        guest.close()


def need(lang: str) -> None:
    """Skip, saying how to install it, when ``lang``'s toolchain is missing."""
    try:
        toolchain(lang).identity()
    except ToolchainMissing as exc:
        pytest.skip(exc.message)


@pytest.fixture
def need_toolchain() -> Callable[[str], None]:
    return need


@pytest.fixture
def sources(c_top1: str) -> dict[str, str]:
    return {
        "c_echo_command": C_ECHO_COMMAND,
        "c_top1": c_top1,
        "rust_echo_command": RUST_ECHO_COMMAND,
        "rust_forward": RUST_FORWARD,
        "as_command": AS_COMMAND,
    }
