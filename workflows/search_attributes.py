"""The search attributes of every case: the one place their names and types are kept.
None of them holds personal data (the name index is a keyed hash)."""

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

ALL = (CASE_KIND, CASE_STAGE, TREATY_ID, CASE_OUTCOME, CASE_STATES, AWAITING_AUTHORITIES, ACTION_DUE_AT,
       CASE_CONFIDENTIAL, PERSON_NAME_INDEX)
