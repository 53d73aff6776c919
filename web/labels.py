"""Words for the codes the API speaks (stages, actions, grounds, conditions, outcomes), in English;
the catalogs translate them. A page shows the label and the code beside it, so that two states
speaking different languages can cross-check what they see. A code without a label is shown as
itself."""

from __future__ import annotations

def N_(text: str) -> str:  # noqa: N802 - gettext's name for "mark for translation, translate later"
    """Marks ``text`` as a msgid of the catalogs (extracted with ``-k N_``); translated when shown."""
    return text


LABELS: dict[str, str] = {
    # transfer stages
    "awaiting_declaration": N_("Awaiting the declaration"),
    "checking_eligibility": N_("Checking eligibility"),
    "awaiting_legal_review": N_("Awaiting legal review"),
    "awaiting_consents": N_("Awaiting the consents"),
    "awaiting_handover": N_("Awaiting the handover"),
    "transferred": N_("Transferred"),
    "refused": N_("Refused"),
    "withdrawn": N_("Withdrawn"),
    "expired": N_("Expired"),
    # assistance stages
    "under_review": N_("Under review"),
    "awaiting_information": N_("Awaiting information"),
    "executing": N_("Executing"),
    "completed": N_("Completed"),
    "partially_completed": N_("Partially completed"),
    "unsuccessful": N_("Unsuccessful"),
    # measures of a request for assistance (their kinds)
    "search": N_("Search"),
    "seizure": N_("Seizure"),
    "inspection": N_("Inspection"),
    "identify_bank_accounts": N_("Identification of bank accounts"),
    "interrogation": N_("Questioning"),
    "information_exchange": N_("Exchange of information"),
    # actions
    "record_declaration": N_("Record the declaration"),
    "legal_review": N_("Record the legal review"),
    "decide": N_("Decide"),
    "confirm_handover": N_("Confirm the handover"),
    "review_request": N_("Review the request"),
    "answer_information": N_("Answer the questions"),
    "authorise_measure": N_("Authorise the measure"),
    "report_result": N_("Report the result"),
    # eligibility
    "nationality": N_("Nationality"),
    "final_judgment": N_("Final judgment"),
    "remaining_term": N_("Remaining term"),
    "dual_criminality": N_("Dual criminality"),
    "financial_obligations": N_("Financial obligations"),
    "pending_proceedings": N_("Pending proceedings"),
    "satisfied": N_("Satisfied"),
    "failed": N_("Failed"),
    "needs_review": N_("Needs review"),
    "not_applicable": N_("Not applicable"),
    # decisions
    "consent": N_("Consent"),
    "refuse": N_("Refuse"),
    "continued": N_("Enforcement continued"),
    "converted": N_("Sentence converted"),
    # grounds
    "no_treaty": N_("No treaty in force"),
    "not_national": N_("Not a national of the administering state"),
    "judgment_not_final": N_("Judgment not final"),
    "insufficient_remaining_term": N_("Too little of the sentence remains"),
    "no_dual_criminality": N_("No dual criminality"),
    "outstanding_financial_obligations": N_("Financial obligations outstanding"),
    "proceedings_pending": N_("Proceedings pending"),
    "sovereignty_or_security": N_("Sovereignty or security"),
    "contrary_to_national_law": N_("Contrary to national law"),
    "state_declined": N_("The state declines"),
    "no_declaration": N_("No declaration of intent"),
    "not_covered_by_treaty": N_("Not covered by the treaty"),
    "sovereignty_security_public_order": N_("Sovereignty, security or public order"),
    "political_offence": N_("Political offence"),
    "military_offence": N_("Military offence"),
    "discrimination": N_("Discrimination"),
    "ne_bis_in_idem": N_("Ne bis in idem"),
    "limitation_expired": N_("Limitation period expired"),
    "no_information": N_("The information asked for never came"),
    # initiators
    "sentenced_person": N_("the sentenced person"),
    "sentencing_state": N_("the sentencing state"),
    "administering_state": N_("the administering state"),
    # documents of the case file (their types)
    "judgment": N_("Judgment"),
    "sentence_statement": N_("Statement of the sentence served"),
    "declaration": N_("Declaration of the sentenced person"),
    "law_text": N_("Text of the law"),
    "medical_report": N_("Medical report"),
    "translation": N_("Translation"),
    "decision": N_("Decision"),
    "other": N_("Other document"),
    "person_notice": N_("Letter to the sentenced person"),
    "request_letter": N_("Letter of request"),
    "court_order": N_("Court order"),
    "evidence": N_("Evidence"),
    "execution_report": N_("Report on execution"),
}

# the procedure of a transfer, in order, for the timeline (a case passes some of them)
TRANSFER_STAGES = ("awaiting_declaration", "checking_eligibility", "awaiting_legal_review", "awaiting_consents",
                   "awaiting_handover")
