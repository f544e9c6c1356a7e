"""What a frontend sends on the timeline comm is input too: a message of any JSON shape is ignored (a subscribe is
the only one acted on), never an exception in the kernel's comm handler."""

from __future__ import annotations

from typing import Any

import pytest
from comm.base_comm import BaseComm

from wasinn_jupyter.magics import workbench
from wasinn_jupyter.panel import TimelineFeed


class ListComm(BaseComm):  # type: ignore[misc]
    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any):
        pass


@pytest.mark.parametrize(
    "msg",
    [{}, {"content": None}, {"content": "x"}, {"content": {"data": "subscribe"}}, {"content": {"data": [1]}},
     {"content": {"data": {"type": ["subscribe"]}}}],
)  # fmt: skip
def test_a_malformed_message_is_ignored(ip: Any, msg: Any) -> None:
    feed = TimelineFeed(workbench(), interval_s=0.05)
    feed.start(announce=False)
    try:
        comm = ListComm(target_name="wasinn.timeline", data={})
        feed.on_comm_open(comm, msg)
        comm.handle_msg(msg)
        assert not feed.listening
        feed.on_comm_open(comm, {"content": {"data": {"type": "subscribe"}}})
        assert feed.listening
    finally:
        feed.stop()
