"""The search attributes of every case: the one place their names and types are kept.
None of them holds personal data (the name index and the assignments' index are keyed hashes)."""

from temporalio.common import SearchAttributeKey

CASE_KIND = SearchAttributeKey.for_keyword("CaseKind")
CASE_STAGE = SearchAttributeKey.for_keyword("CaseStage")
TREATY_ID = SearchAttributeKey.for_keyword("TreatyId")
CASE_OUTCOME = SearchAttributeKey.for_keyword("CaseOutcome")
CASE_STATES = SearchAttributeKey.for_keyword_list("CaseStates")
AWAITING_AUTHORITIES = SearchAttributeKey.for_keyword_list("AwaitingAuthorities")
ACTION_DUE_AT = SearchAttributeKey.for_datetime("ActionDueAt")
# set once when a request is opened: counts for authorities that may not see confidential requests
CASE_CONFIDENTIAL = SearchAttributeKey.for_bool("CaseConfidential")

# a transfer's sentenced person as the lists' search finds them: a keyed hash of the name, never the
# name (domain.names; set when the case is opened)
PERSON_NAME_INDEX = SearchAttributeKey.for_keyword("PersonNameIndex")

# who handles what each awaited authority must do (the inbox's "mine" and "unassigned"), one value per
# authority in AwaitingAuthorities: the blind index of `authority/user` (domain.names.assignee_index)
# of the person who took it, or `unassigned:<authority>` while nobody of it has. The third and last
# KeywordList SQL visibility allows (docs/architecture.md).
INBOX_ASSIGNMENTS = SearchAttributeKey.for_keyword_list("InboxAssignments")


# how long the case has spent in each stage it has left, and since when it is in the current one
# (domain.caseload.StageTimes: stage indexes and seconds, never anything of the persons); the caseload
# figures' times are read from it by a list, no case read one by one. A Keyword: under 255 characters.
STAGE_TIMES = SearchAttributeKey.for_keyword("StageTimes")


def unassigned(authority: str) -> str:
    """The value of InboxAssignments for an awaited authority of which nobody has taken the item."""
    return f"unassigned:{authority}"


ALL = (CASE_KIND, CASE_STAGE, TREATY_ID, CASE_OUTCOME, CASE_STATES, AWAITING_AUTHORITIES, ACTION_DUE_AT,
       CASE_CONFIDENTIAL, PERSON_NAME_INDEX, INBOX_ASSIGNMENTS, STAGE_TIMES)
