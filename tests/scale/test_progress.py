"""The terminal bar: done, failed and rate on one redrawn line, drawn only on a terminal."""

from __future__ import annotations

import io

from wasinn_jupyter.scale.progress import TerminalProgress, describe


def test_the_bar_redraws_one_line_with_done_failed_and_rate() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream, force=True)
    bar.start(4)
    bar.update(4, 1)
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2Kmap [") and text.endswith("\n")
    assert "4/4 done, 1 failed, " in text and "/s" in text and "#" * 28 in text


def test_nothing_is_drawn_when_the_stream_is_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    bar.start(2)
    bar.update(2, 0)
    bar.close()
    assert stream.getvalue() == ""


def test_the_words() -> None:
    assert describe(10, 40, 2, 5.0) == "10/40 done, 2 failed, 2.0/s, eta 15 s"
    assert describe(0, 40, 0, 0.0) == "0/40 done, 0 failed, 0.0/s"
