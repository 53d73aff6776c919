"""Every committed history replays against the current workflow code: a change that would
break running cases fails here (it needs `workflow.patched()`)."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from treatyflow.client import PLAIN_CONVERTER
from worker import WORKFLOWS
from workflows.case import PUBLISH_CHANGES

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


@pytest.mark.parametrize(("version", "patched"), [("v5", True), ("v6", False)])
async def test_publishing_changes_is_behind_its_patch(version: str, patched: bool):
    """The patch ``publish-changes`` (0.3.0) is what keeps cases begun before it replaying: a
    transfer of 0.2.0 replayed as if it had the patch, or one of 0.3.0 as if it had not, breaks."""
    real = workflow.patched
    path = Path(__file__).parent.parent / "histories" / f"transfer-transferred-{version}.json"
    history = WorkflowHistory.from_json("replay-forced", path.read_text())
    with patch.object(workflow, "patched", lambda patch_id: patched if patch_id == PUBLISH_CHANGES else real(patch_id)):
        result = await Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER,
                                workflow_runner=UnsandboxedWorkflowRunner()).replay_workflow(
            history, raise_on_replay_failure=False)
    assert result.replay_failure is not None, f"{path.name} replays whichever branch it takes"
