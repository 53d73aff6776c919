"""Every committed history replays against the current workflow code: a change that would
break running cases fails here (it needs `workflow.patched()`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from treatyflow.client import PLAIN_CONVERTER
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_there_are_histories_of_each_path():
    paths = {p.stem.rsplit("-", 1)[0] for p in HISTORIES}
    assert {"transfer-transferred", "transfer-withdrawn", "transfer-refused-at-intake",
            "transfer-review-then-state-refusal", "assistance-information-then-completed",
            "assistance-withdrawn-during-execution", "measure-of-assistance-information-then-completed",
            "assistance-continued-as-new", "assistance-due-by-date", "transfer-converted-handed-over-elsewhere"} <= paths


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER).replay_workflow(
        history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"
