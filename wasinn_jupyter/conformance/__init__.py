"""The echo-model conformance suite for wasi-nn hosts: WAT guests that check the witx API themselves.

``run_suite()`` measures our host; ``run_host()`` any ``HostUnderTest`` (ours, the wasmtime CLI, a command
template); ``emit()`` writes the assembled guests and a case list, to run the suite by hand elsewhere.
"""

from .hosts import CommandHost, HostUnavailable, HostUnderTest, WasinnHost, WasmtimeHost, run_host, run_hosts
from .report import CaseResult, Report, markdown, side_by_side
from .runner import Case, emit, run_suite

__all__ = [
    "Case",
    "CaseResult",
    "CommandHost",
    "HostUnavailable",
    "HostUnderTest",
    "Report",
    "WasinnHost",
    "WasmtimeHost",
    "emit",
    "markdown",
    "run_host",
    "run_hosts",
    "run_suite",
    "side_by_side",
]
