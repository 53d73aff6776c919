"""Every committed history replays against the current workflow code: a change that would
break running cases fails here (it needs `workflow.patched()`)."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from treatyflow.client import PLAIN_CONVERTER
from worker import WORKFLOWS
from workflows import search_attributes as sa
from workflows.case import INBOX_ASSIGNMENTS, PUBLISH_CHANGES, STAGE_TIMES
from workflows.transfer import PERSON_NOTICES

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_there_are_histories_of_each_path():
    paths = {p.stem.rsplit("-", 1)[0] for p in HISTORIES}
    assert {"transfer-transferred", "transfer-withdrawn", "transfer-refused-at-intake",
            "transfer-review-then-state-refusal", "assistance-information-then-completed",
            "assistance-withdrawn-during-execution", "measure-of-assistance-information-then-completed",
            "assistance-continued-as-new", "assistance-due-by-date", "transfer-converted-handed-over-elsewhere",
            "transfer-assigned"} <= paths


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path):
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    result = await Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER).replay_workflow(
        history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


@pytest.mark.parametrize(("patch_id", "path", "version", "patched"), [
    (PUBLISH_CHANGES, "transfer-transferred", "v5", True), (PUBLISH_CHANGES, "transfer-transferred", "v6", False),
    (INBOX_ASSIGNMENTS, "transfer-assigned", "v6", True), (INBOX_ASSIGNMENTS, "transfer-assigned", "v7", False),
    (PERSON_NOTICES, "transfer-transferred", "v6", True), (PERSON_NOTICES, "transfer-transferred", "v8", False),
    (STAGE_TIMES, "transfer-transferred", "v9", False)])
async def test_each_change_of_commands_is_behind_its_patch(patch_id: str, path: str, version: str, patched: bool):
    """The patches are what keep cases begun before them replaying: ``publish-changes`` (0.3.0) —
    a transfer of 0.2.0 replayed as if it had the patch, or a later one as if it had not, breaks;
    ``inbox-assignments`` (0.3.0) — the same for a transfer whose items were taken before it
    (v6: the assignment upserted only the memo and stayed after its authority acted) and after;
    ``person-notices`` (0.3.0) — a transfer without letters to the person (v6) and with them (v8);
    ``stage-times`` (0.3.0) — a transfer that published its stage times (v9) replayed as if it had
    not (the other way round: below)."""
    real = workflow.patched
    history_file = Path(__file__).parent.parent / "histories" / f"{path}-{version}.json"
    history = WorkflowHistory.from_json("replay-forced", history_file.read_text())
    with patch.object(workflow, "patched", lambda pid: patched if pid == patch_id else real(pid)):
        result = await Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER,
                                workflow_runner=UnsandboxedWorkflowRunner()).replay_workflow(
            history, raise_on_replay_failure=False)
    assert result.replay_failure is not None, f"{history_file.name} replays whichever branch it takes"


def stage_times_upserted(history: WorkflowHistory) -> list[str | None]:
    """What each of the workflow's upserts (core's own TemporalChangeVersion ones left out) said
    of StageTimes: its value, or None where it did not name it."""
    said = []
    for event in history.events:
        if event.HasField("upsert_workflow_search_attributes_event_attributes"):
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if set(fields) != {"TemporalChangeVersion"}:
                said.append(json.loads(fields[sa.STAGE_TIMES.name].data) if sa.STAGE_TIMES.name in fields else None)
    return said


@pytest.mark.parametrize(("name", "forced"), [
    ("transfer-transferred-v8", None), ("transfer-transferred-v8", True), ("transfer-transferred-v9", None),
    ("assistance-information-then-completed-v9", None),
    ("assistance-continued-as-new-v9", None), ("assistance-continued-as-new-v6", None)])
async def test_stage_times_go_only_to_cases_begun_with_them(name: str, forced: bool | None):
    """``stage-times`` (0.3.0): the engine does not compare an upsert's attributes on replay, so a
    case begun before the patch replays as if patched (a case begun after it, replayed as if not,
    fails: the table above). Replayed, each case upserts exactly the StageTimes it upserted when it
    ran — none before the patch, the same values from the same clock after — and the patch is what
    makes it so: a case begun before it, replayed as if patched, would publish StageTimes it never
    had."""
    history = WorkflowHistory.from_json(f"replay-{name}", (HISTORIES[0].parent / f"{name}.json").read_text())
    recorded = stage_times_upserted(history)
    replayed: list[str | None] = []
    real_upsert, real_patched = workflow.upsert_search_attributes, workflow.patched

    def upsert(updates, **kwargs) -> None:
        replayed.append(next((u.value for u in updates if u.key == sa.STAGE_TIMES), None))
        real_upsert(updates, **kwargs)

    def patched(patch_id: str) -> bool:
        return forced if patch_id == STAGE_TIMES and forced is not None else real_patched(patch_id)

    with patch.object(workflow, "upsert_search_attributes", upsert), patch.object(workflow, "patched", patched):
        result = await Replayer(workflows=WORKFLOWS, data_converter=PLAIN_CONVERTER,
                                workflow_runner=UnsandboxedWorkflowRunner()).replay_workflow(
            history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    assert (replayed == recorded) is (forced is None), (recorded, replayed)
    assert any(recorded) is name.endswith("-v9")
