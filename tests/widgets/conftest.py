"""A comm transport that keeps what widgets send, plugged in the way ipykernel plugs in its own
(``comm.create_comm``), so tests see the very messages a front-end would get: JSON state and binary buffers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    """A comm whose messages go into ``sent`` (msg_type, data, buffers) instead of a kernel's iopub socket."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[str, dict[str, Any], list[bytes]]] = []
        super().__init__(**kwargs)

    def publish_msg(
        self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
    ) -> None:
        self.sent.append((msg_type, data or {}, [bytes(b) for b in buffers or []]))

    def updates(self) -> list[tuple[dict[str, Any], list[bytes]]]:
        """The state updates sent so far (data["state"], buffers), oldest first."""
        return [(d["state"], b) for t, d, b in self.sent if t == "comm_msg" and d.get("method") == "update"]


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    """Every comm a widget opens during the test, in order."""
    opened: list[RecordingComm] = []

    def create(**kwargs: Any) -> RecordingComm:
        made = RecordingComm(**kwargs)
        opened.append(made)
        return made

    monkeypatch.setattr(comm, "create_comm", create)
    yield opened
