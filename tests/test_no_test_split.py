"""No search reads a test split: for every shipped task, the task a search builds never opens its test files
(they point nowhere here, so reading one would fail) and reports no metric of a test set."""

import pytest

from nas.tasks import TASKS, make_task

from .conftest import TINY, compose_config

NOWHERE = "/nonexistent/test-split"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_a_search_never_reads_a_test_split(task):
    overrides = [*TINY, f"task={task}", f"task.test_file={NOWHERE}.csv"]
    if task == "audio_classification":  # its extra test sets (unseen speakers, human voices)
        overrides += [f"task.test_files.unseen={NOWHERE}.npz", f"task.test_files.human={NOWHERE}.npz"]
    config = compose_config(overrides)
    built = make_task(config.task)  # a search's task: opening a test file here would raise DataError
    assert not [s for s in getattr(built, "tests", {}) if s], f"{task} holds test sets in a search"
    with pytest.raises(Exception, match="nonexistent"):  # nas-final's task does read them
        make_task(config.task, with_test=True)
