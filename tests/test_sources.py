"""The in-memory training stream and eval batches: deterministic, resumable, sharded, complete."""
import numpy as np
import pytest

from bsgap.data.sources import ArraySplit, TrainStream, eval_batches


def _split(n=103):
    return ArraySplit({"image": np.arange(n, dtype=np.float32)[:, None],
                       "label": np.arange(n, dtype=np.int32)})


def test_epochs_visit_distinct_examples_and_reshuffle():
    stream = TrainStream(_split(), 10, seed=3)
    assert stream.steps_per_epoch == 10
    epoch0 = np.concatenate([stream.batch(s)["label"] for s in range(10)])
    epoch1 = np.concatenate([stream.batch(s)["label"] for s in range(10, 20)])
    assert len(set(epoch0)) == 100 and len(set(epoch1)) == 100
    assert not np.array_equal(epoch0, epoch1)


def test_batch_is_a_function_of_seed_and_step():
    a, b = TrainStream(_split(), 10, seed=3), TrainStream(_split(), 10, seed=3)
    late = [b.batch(s)["label"] for s in (57, 12, 13)]  # random access, any order
    np.testing.assert_array_equal(late[0], [a.batch(s) for s in range(58)][-1]["label"])
    np.testing.assert_array_equal(late[1], a.batch(12)["label"])
    assert not np.array_equal(TrainStream(_split(), 10, seed=4).batch(0)["label"],
                              a.batch(0)["label"])


def test_process_rows_are_disjoint_and_complete():
    full = TrainStream(_split(), 12, seed=0)
    parts = [TrainStream(_split(), 12, seed=0, process_index=p, process_count=3)
             for p in range(3)]
    for step in (0, 7, 8, 30):
        rows = [p.batch(step)["label"] for p in parts]
        assert all(len(r) == 4 for r in rows)
        np.testing.assert_array_equal(np.concatenate(rows), full.batch(step)["label"])


@pytest.mark.parametrize("batch,processes", [(10, 1), (16, 2), (200, 4), (103, 1)])
def test_eval_batches_cover_split_once(batch, processes):
    seen = []
    for p in range(processes):
        for b in eval_batches(_split(), batch, p, processes):
            assert b["label"].shape[0] == batch // processes
            seen += list(b["label"][b["mask"] > 0])
    assert sorted(seen) == list(range(103))


def test_batch_larger_than_split_is_refused():
    with pytest.raises(ValueError, match="batch_size=200 exceeds the 103 training examples"):
        TrainStream(_split(), 200, seed=0)
