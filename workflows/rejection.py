"""Why an act on a case is rejected by an update validator. The ``type`` tells the API which
status to answer: ``not_permitted`` → 403, ``invalid`` → 422, ``conflict`` → 409."""

from temporalio.exceptions import ApplicationError

NOT_PERMITTED = "not_permitted"
INVALID = "invalid"
CONFLICT = "conflict"


def not_permitted(message: str) -> ApplicationError:
    return ApplicationError(message, type=NOT_PERMITTED, non_retryable=True)


def invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, {"field": field}, type=INVALID, non_retryable=True)


def conflict(message: str) -> ApplicationError:
    return ApplicationError(message, type=CONFLICT, non_retryable=True)
