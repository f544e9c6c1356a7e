"""What a conformance run found: per case, per group and per host, as text, JSON and Markdown.

One ``Report`` per host. The side-by-side views (``side_by_side``, ``markdown``) take several, in the order the
hosts were given, and line their cases up by name; a case one host did not run shows as ``-``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "skip", "not expressible"]
Basis = Literal["spec", "choice"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "not expressible", "skip")
SHORT = {"pass": "pass", "fail": "FAIL", "not expressible": "n/e", "skip": "skip"}
CHOICE_MARK = "†"  # marks a case whose expectation is a host's choice where the spec is silent
ABI_NAMES = {"witx": "witx", "wit": "WIT"}  # how the reports name the two ABIs


def abi_of(name: str) -> str:
    """The ABI a case ran over, from its name: the WIT component cases are named ``wit/...``."""
    return "wit" if name.startswith("wit/") else "witx"


@dataclass
class CaseResult:
    name: str
    group: str
    status: Status
    detail: str  # why it failed, was skipped or is not expressible, in words; empty for a pass
    duration_s: float
    # how it failed, for machines: "errno", "bytes", "bytes_written", "overrun", "trap", "crash", "timeout",
    # "host-error", "no-result", "bad-case"; empty otherwise
    kind: str = ""
    code: int | None = None  # the guest's result code, where the guest returned one
    basis: Basis = "spec"


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0
    not_expressible: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, results: Sequence[CaseResult]) -> Counts:
        def n(status: Status) -> int:
            return sum(1 for r in results if r.status == status)

        return cls(n("pass"), n("fail"), n("not expressible"), n("skip"))

    def line(self) -> str:
        """``N passed, M failed``, then the not expressible and skipped counts where there are any."""
        text = f"{self.passed} passed, {self.failed} failed"
        if self.not_expressible:
            text += f", {self.not_expressible} not expressible"
        return text + (f", {self.skipped} skipped" if self.skipped else "")


@dataclass
class Report:
    """The results of one run on one host, with the counts, a text table and JSON for the CLI."""

    target: str
    results: list[CaseResult] = field(default_factory=list)
    duration_s: float = 0.0
    host_info: dict[str, Any] = field(default_factory=dict)
    host: str = "wasinn"  # the label the reports use

    @property
    def counts(self) -> Counts:
        return Counts.of(self.results)

    @property
    def passed(self) -> int:
        return self.counts.passed

    @property
    def failed(self) -> int:
        return self.counts.failed

    @property
    def skipped(self) -> int:
        return self.counts.skipped

    @property
    def not_expressible(self) -> int:
        return self.counts.not_expressible

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary_line(self) -> str:
        return self.counts.line()

    def abis(self) -> dict[str, Counts]:
        """Counts per ABI (``witx``, ``wit``), in the order they ran."""
        order: dict[str, list[CaseResult]] = {}
        for r in self.results:
            order.setdefault(abi_of(r.name), []).append(r)
        return {abi: Counts.of(results) for abi, results in order.items()}

    def abi_line(self) -> str:
        """``over witx: N passed, ...; over WIT: ...``; empty where the run had one ABI only."""
        abis = self.abis()
        if len(abis) < 2:
            return ""
        return "; ".join(f"over {ABI_NAMES[abi]}: {counts.line()}" for abi, counts in abis.items())

    def groups(self) -> dict[str, Counts]:
        """Counts per group, in the order the groups first ran."""
        order: dict[str, list[CaseResult]] = {}
        for r in self.results:
            order.setdefault(r.group, []).append(r)
        return {group: Counts.of(results) for group, results in order.items()}

    def title(self) -> str:
        """The host as the reports name it: label, exact version and backend."""
        info = self.host_info
        parts = [str(info.get("version_line") or f"{info.get('name', self.host)} {info.get('version', '')}".strip())]
        if info.get("backend"):
            parts.append(f"backend {info['backend']}")
        return ", ".join(parts)

    def table(self) -> str:
        rows = [("case", "status", "detail")] + [(r.name, r.status, r.detail) for r in self.results]
        name_w = max(len(r[0]) for r in rows)
        status_w = max(len(r[1]) for r in rows)
        lines = [f"{a:<{name_w}}  {b:<{status_w}}  {c}".rstrip() for a, b, c in rows]
        lines.insert(1, f"{'-' * name_w}  {'-' * status_w}  {'-' * 6}")
        return "\n".join(lines)

    def group_lines(self) -> str:
        groups = self.groups()
        width = max((len(g) for g in groups), default=0)
        return "\n".join(f"{group:<{width}}  {counts.line()}" for group, counts in groups.items())

    def to_json(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "suite": "wasi-nn echo-model conformance",
            "host_label": self.host,
            "target": self.target,
            "host": self.host_info,
            "counts": {
                "passed": counts.passed,
                "failed": counts.failed,
                "not_expressible": counts.not_expressible,
                "skipped": counts.skipped,
                "total": len(self.results),
            },
            "abis": {abi: asdict(c) for abi, c in self.abis().items()},
            "groups": {g: asdict(c) for g, c in self.groups().items()},
            "ok": self.ok,
            "duration_s": round(self.duration_s, 3),
            "cases": [asdict(r) for r in self.results],
        }


# -- several hosts -------------------------------------------------------------------------------------------------


def _names(reports: Sequence[Report]) -> list[str]:
    seen: dict[str, None] = {}
    for report in reports:
        for r in report.results:
            seen.setdefault(r.name, None)
    return list(seen)


def _by_name(report: Report) -> dict[str, CaseResult]:
    return {r.name: r for r in report.results}


def _groups(reports: Sequence[Report]) -> list[str]:
    seen: dict[str, None] = {}
    for report in reports:
        for group in report.groups():
            seen.setdefault(group, None)
    return list(seen)


def side_by_side(reports: Sequence[Report]) -> str:
    """A text table, one row per case and one column per host, then each host's failures in words."""
    names = _names(reports)
    by_host = [_by_name(r) for r in reports]
    heads = ["case", *(r.host for r in reports)]
    rows = [[n, *(SHORT[b[n].status] if n in b else "-" for b in by_host)] for n in names]
    widths = [max(len(row[i]) for row in [heads, *rows]) for i in range(len(heads))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(heads), line(["-" * w for w in widths]), *(line(row) for row in rows), ""]
    for report in reports:
        out.append(f"{report.host}: {report.title()}")
        out += [f"  {group}: {counts.line()}" for group, counts in report.groups().items()]
        out += [f"  {r.name}: {r.status}: {r.detail}" for r in report.results if r.status != "pass"]
        out += [f"  {abi_line}" for abi_line in [report.abi_line()] if abi_line]
        out.append(f"  all: {report.summary_line()}, in {report.duration_s:.1f} s")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _case_cell(result: CaseResult) -> str:
    mark = f" {CHOICE_MARK}" if result.basis == "choice" else ""
    return f"`{result.name}`{mark}"


KIND_WORDS = {
    "errno": "a wrong errno",
    "bytes": "wrong output bytes",
    "bytes_written": "a wrong bytes_written",
    "overrun": "a write past the output",
    "trap": "the guest trapped",
    "crash": "the host crashed",
    "timeout": "timed out",
    "host-error": "the host refused to run",
    "no-result": "no result printed",
    "bad-case": "a broken case",
    "name": "outputs named otherwise",
    "no-error": "success where an error was due",
    "count": "a wrong output count",
    "dims": "wrong output dims",
    "type": "a wrong output type",
}


def markdown_summary(reports: Sequence[Report]) -> str:
    """Groups by hosts, side by side, and each host's failures by kind with an example (the README's table)."""
    out = [
        "| group | " + " | ".join(_cell(r.host) for r in reports) + " |",
        "|---|" + "---|" * len(reports),
    ]
    for group in _groups(reports):
        cells = []
        for report in reports:
            counts = report.groups().get(group)
            cells.append(counts.line() if counts else "-")
        out.append(f"| {group} | " + " | ".join(cells) + " |")
    abis = list(dict.fromkeys(abi for r in reports for abi in r.abis()))
    if len(abis) > 1:
        for abi in abis:
            cells = [r.abis()[abi].line() if abi in r.abis() else "-" for r in reports]
            out.append(f"| **over {ABI_NAMES[abi]}** | " + " | ".join(cells) + " |")
    out.append("| **all** | " + " | ".join(f"**{r.summary_line()}**" for r in reports) + " |")
    out += ["", "Hosts: " + "; ".join(f"**{_cell(r.host)}**: {_cell(r.title())}" for r in reports) + "."]
    rows = []
    for report in reports:
        by_kind: dict[str, list[CaseResult]] = {}
        for r in report.results:
            if r.status in ("fail", "not expressible"):
                by_kind.setdefault(r.kind or r.status, []).append(r)
        for kind, results in by_kind.items():
            first = results[0]
            choice = sum(1 for r in results if r.basis == "choice" and r.status == "fail")
            count = f"{len(results)}" + (f" ({choice} {CHOICE_MARK})" if choice else "")
            what = KIND_WORDS.get(kind, kind)
            rows.append(f"| {_cell(report.host)} | {what} | {count} | {_case_cell(first)}: {_cell(first.detail)} |")
    if rows:
        out += ["", "| host | outcome | cases | for example |", "|---|---|---|---|", *rows]
    if any(CHOICE_MARK in line for line in out):  # the footnote only where a mark needs it
        out += [
            "",
            f"{CHOICE_MARK} the spec leaves this open; the expectation is a host's choice (cases.json says whose).",
        ]
    return "\n".join(out)


def _differing(reports: Sequence[Report]) -> list[str]:
    by_host = [_by_name(r) for r in reports]
    table = ["| case | " + " | ".join(_cell(r.host) for r in reports) + " |", "|---|" + "---|" * len(reports)]
    for n in _names(reports):
        if len({b[n].status if n in b else "-" for b in by_host}) < 2:
            continue
        first = next(b[n] for b in by_host if n in b)
        cells = []
        for b in by_host:
            r = b.get(n)
            cells.append("-" if r is None else _cell(r.status + (f": {r.detail}" if r.detail else "")))
        table.append(f"| {_case_cell(first)} | " + " | ".join(cells) + " |")
    return table if len(table) > 2 else []


def markdown(reports: Sequence[Report], title: str = "wasi-nn echo-model conformance") -> str:
    """The whole report for people: the side-by-side summary, then a table of every case per host."""
    target = reports[0].target if reports else "cpu"
    out = [f"# {title}", "", f"Target `{target}`. Each case is one guest export run in a fresh instance.", ""]
    out += ["## Side by side", "", markdown_summary(reports), ""]
    differing = _differing(reports) if len(reports) > 1 else []
    if differing:
        out += ["## Cases whose outcomes differ", "", *differing, ""]
    for report in reports:
        out += [
            f"## {_cell(report.host)}",
            "",
            f"{_cell(report.title())}. {report.summary_line()}, in {report.duration_s:.1f} s."
            + (f" O{report.abi_line()[1:]}." if report.abi_line() else ""),
            "",
        ]
        command = report.host_info.get("command")
        if command:
            out += [f"Command per case: `{_cell(str(command))}`", ""]
        command_wit = report.host_info.get("command_wit")
        if command_wit:
            out += [f"Command per WIT case (a component, its export called in WAVE): `{_cell(str(command_wit))}`", ""]
        out += [f"Note: {_cell(str(note))}" for note in report.host_info.get("notes", ())]
        out += ["| case | outcome | detail |", "|---|---|---|"]
        out += [f"| {_case_cell(r)} | {r.status} | {_cell(r.detail)} |" for r in report.results]
        out.append("")
    return "\n".join(out)
