"""Our WASI poll_oneoff against wasmtime's own: the same answers, and a stopped guest does not sleep on."""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Callable

import pytest
import wasmtime

from wasinn_jupyter.host import GuestError, GuestLimits, GuestStopped, Session

POLL = r"""(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "poll") (param i32 i32 i32 i32) (result i32)
    (call $poll (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "now") (param i32) (result i64)
    (drop (call $now (local.get 0) (i64.const 1) (i32.const 65528)))
    (i64.load (i32.const 65528)))
)"""
IN, OUT, NEVENTS = 1024, 4096, 8192
MONOTONIC, REALTIME = 1, 0


def clock(userdata: int, clock_id: int, timeout_ns: int, flags: int = 0) -> bytes:
    sub = bytearray(48)
    struct.pack_into("<QB", sub, 0, userdata, 0)
    struct.pack_into("<IxxxxQQH", sub, 16, clock_id, timeout_ns, 0, flags)
    return bytes(sub)


def fd(userdata: int, tag: int, number: int) -> bytes:
    sub = bytearray(48)
    struct.pack_into("<QB", sub, 0, userdata, tag)
    struct.pack_into("<I", sub, 16, number)
    return bytes(sub)


class Poller:
    """One instance of POLL: write subscriptions, call poll_oneoff, read back what it wrote."""

    def __init__(self, store: wasmtime.Store, instance: wasmtime.Instance, call: Callable[..., object]) -> None:
        self.store = store
        self.memory = instance.exports(store)["memory"]
        self._call = call

    def poll(self, subs: list[bytes], n: int | None = None, *, at: int = IN, out: int = OUT, nev: int = NEVENTS):
        """(errno or the error's last line, seconds taken, nevents bytes, the events area's first bytes)."""
        self.memory.write(self.store, bytes(65536 - 8), 0)
        self.memory.write(self.store, b"\xaa" * 256, OUT)  # to see which bytes are written
        self.memory.write(self.store, b"\xaa" * 4, NEVENTS)
        if subs and 0 <= at <= 65536 - 48 * len(subs):
            self.memory.write(self.store, b"".join(subs), at)
        start = time.monotonic()
        try:
            result: object = self._call("poll", at, out, len(subs) if n is None else n, nev)
        except (GuestError, wasmtime.WasmtimeError) as exc:
            last = str(exc).strip().splitlines()[-1].strip().removeprefix("guest failed: ")
            last = last.removeprefix("poll_oneoff: ")
            result = re.sub(r"^\d+: ", "", last)  # wasmtime numbers some causes
        taken = time.monotonic() - start
        return result, taken, self.read(NEVENTS, 4), self.read(OUT, 32 * max(1, len(subs)))

    def read(self, ptr: int, length: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + length))

    def events(self) -> list[tuple[int, int, int, int, int]]:
        count = struct.unpack("<I", self.read(NEVENTS, 4))[0]
        return [struct.unpack_from("<QHBxxxxxQH", self.read(OUT + 32 * i, 32)) for i in range(count)]


@pytest.fixture
def ours(session: Session) -> Poller:
    guest = session.instantiate(session.compile(POLL))
    return Poller(guest.store, guest.instance, lambda name, *a: guest.call(name, *a, watch=False))


@pytest.fixture
def theirs() -> Poller:
    """The same guest on plain wasmtime: its own poll_oneoff."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, wasmtime.Module(engine, POLL))
    return Poller(store, instance, lambda name, *a: instance.exports(store)[name](store, *a))


def test_a_sleep_reads_back_its_event(ours: Poller) -> None:
    errno, taken, _, _ = ours.poll([clock(0x1122334455667788, MONOTONIC, 200_000_000)])
    assert errno == 0 and 0.19 < taken < 5
    assert ours.events() == [(0x1122334455667788, 0, 0, 0, 0)]  # userdata, error, type clock, nbytes, flags


CASES: dict[str, tuple[list[bytes], dict[str, int]]] = {
    "relative monotonic": ([clock(7, MONOTONIC, 100_000_000)], {}),
    "relative realtime": ([clock(7, REALTIME, 100_000_000)], {}),
    "absolute monotonic zero": ([clock(9, MONOTONIC, 0, flags=1)], {}),
    "the earliest of two": ([clock(1, MONOTONIC, 300_000_000), clock(2, MONOTONIC, 100_000_000)], {}),
    "two due at once": ([clock(1, MONOTONIC, 0), clock(2, REALTIME, 0)], {}),
    "process cputime clock": ([clock(9, 2, 1000)], {}),
    "unknown clock": ([clock(9, 7, 1000)], {}),
    "unknown flag": ([clock(9, MONOTONIC, 1000, flags=2)], {}),
    "unknown tag": ([fd(5, 3, 0)], {}),
    "stdin readable": ([fd(5, 1, 0)], {}),
    "stdout writable": ([fd(5, 2, 1)], {}),
    "stdout not readable": ([fd(5, 1, 1)], {}),
    "closed fd": ([fd(5, 1, 9)], {}),
    "an fd and a long clock": ([fd(5, 2, 2), clock(6, MONOTONIC, 5_000_000_000)], {}),
    "a bad subscription after a good one": ([clock(1, MONOTONIC, 100_000_000), clock(2, 7, 0)], {}),
    "no subscriptions": ([], {}),
    "subscriptions past memory": ([clock(7, MONOTONIC, 100_000_000)], {"at": 65536 - 40}),
    "subscriptions misaligned": ([clock(7, MONOTONIC, 100_000_000)], {"at": IN + 4}),
    "events past memory": ([clock(7, MONOTONIC, 100_000_000)], {"out": 65536 - 16}),
    "events misaligned": ([clock(7, MONOTONIC, 100_000_000)], {"out": OUT + 4}),
    "nevents past memory": ([clock(7, MONOTONIC, 100_000_000)], {"nev": 65535}),
    "nevents misaligned": ([clock(7, MONOTONIC, 100_000_000)], {"nev": NEVENTS + 2}),
    "a huge count": ([clock(7, MONOTONIC, 100_000_000)], {"n": 0x7FFFFFFF}),
}


@pytest.mark.parametrize("case", CASES)
def test_the_same_answer_as_wasmtime(ours: Poller, theirs: Poller, case: str) -> None:
    subs, where = CASES[case]
    mine, native = ours.poll(subs, **where), theirs.poll(subs, **where)
    assert (mine[0], mine[2], mine[3]) == (native[0], native[2], native[3])  # errno or error, nevents, events
    assert mine[1] < native[1] + 1  # and about as long


def test_an_absolute_monotonic_deadline_counts_from_the_guests_clock(ours: Poller) -> None:
    now = ours._call("now", MONOTONIC)
    assert isinstance(now, int)
    errno, taken, _, _ = ours.poll([clock(3, MONOTONIC, now + 200_000_000, flags=1)])
    assert errno == 0 and 0.15 < taken < 5
    assert ours.events() == [(3, 0, 0, 0, 0)]


def test_a_deadline_stops_a_guest_sleeping_in_poll(session: Session) -> None:
    guest = session.instantiate(session.compile(POLL), limits=GuestLimits(deadline_s=0.3))
    poller = Poller(guest.store, guest.instance, guest.call)
    poller.memory.write(guest.store, clock(1, MONOTONIC, 30_000_000_000), IN)
    start = time.monotonic()
    with pytest.raises(GuestStopped, match="deadline"):
        guest.call("poll", IN, OUT, 1, NEVENTS, watch=False)
    assert time.monotonic() - start < 10  # not the 30 s asked for
    assert guest.call("now", MONOTONIC, watch=False) > 0  # and the guest is usable again


def test_an_interrupt_stops_a_guest_sleeping_in_poll(session: Session) -> None:
    guest = session.instantiate(session.compile(POLL))
    poller = Poller(guest.store, guest.instance, guest.call)
    poller.memory.write(guest.store, clock(1, REALTIME, 30_000_000_000), IN)
    timer = threading.Timer(0.3, guest.interrupt)
    timer.start()
    start = time.monotonic()
    with pytest.raises(GuestStopped, match="interrupted"):
        guest.call("poll", IN, OUT, 1, NEVENTS, watch=False)
    assert time.monotonic() - start < 10
    timer.join()


def test_a_guest_without_memory_gets_wasmtimes_error(session: Session) -> None:
    guest = session.instantiate(session.compile(POLL.replace('(memory (export "memory") 1)', "(memory 1)")))
    with pytest.raises(GuestError, match="missing required memory export"):
        guest.call("poll", IN, OUT, 1, NEVENTS, watch=False)
