"""The echo-model conformance suite for wasi-nn hosts: WAT guests that check the witx API themselves.

``run_suite()`` measures our host; ``emit()`` writes the assembled guests and a case list, to measure another.
"""

from .runner import CaseResult, Report, emit, run_suite

__all__ = ["CaseResult", "Report", "emit", "run_suite"]
