"""One MapWorker, in this process: the guest compiled once serves many inputs; a bad input fails only itself."""

from __future__ import annotations

from pathlib import Path

from wasinn_jupyter.scale.job import MAX_OUTPUT_BYTES, MapWorker

from .conftest import Classifier, behave_job, write_inputs


def test_one_worker_serves_many_inputs_and_fails_only_the_bad_ones(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path, ["ok-a", "trap", "loop", "x3", "ok-b"])
    worker = MapWorker(behave_job(deadline_s=0.5), "w")
    try:
        results = [worker.serve(i, p.name, str(p.parent), str(p)) for i, p in enumerate(paths)]
        assert [r.exit_code for r in results] == [0, 134, 130, 3, 0]
        assert results[0].stdout == "ok-a" and results[4].stdout == "ok-b"
        assert results[1].error is not None and "unreachable" in results[1].error
        assert results[2].error is not None and "deadline of 0.5 s exceeded" in results[2].error
        assert results[3].stdout == "x3" and results[3].error is None
        records = worker.new_records()
        compiles = [r for r in records if r["call"] == "compile"]
        assert len(compiles) == 1  # compiled once, for five inputs
        assert len({r["guest_id"] for r in records if r["call"] == "instantiate"}) == 5
        assert worker.new_records() == []  # each record goes to the caller once
    finally:
        worker.close()


def test_output_is_capped(tmp_path: Path) -> None:
    from wasinn_jupyter.scale.job import _Capture

    capture = _Capture()
    capture(b"x" * (MAX_OUTPUT_BYTES - 1))
    capture(b"yyyy")
    assert len(capture.data) == MAX_OUTPUT_BYTES
    assert capture.text().endswith("[wasinn: 3 more bytes dropped]")


def test_the_classifier_answers_as_torch(classifier: Classifier) -> None:
    worker = MapWorker(classifier.job(), "w")
    try:
        for i, image in enumerate(classifier.images[:3]):
            result = worker.serve(i, image.name, str(image.parent), str(image))
            assert result.exit_code == 0, result
            assert classifier.top_class(result.stdout) == classifier.top[i]
        loads = [r for r in worker.new_records() if r["call"] == "load_by_name"]
        assert len(loads) == 3 and all(r["outcome"] == "ok" for r in loads)
    finally:
        worker.close()
