"""Reference data: the treaty registry, ICCS 1.0, criminalisation tables, article tables and
the authority directory. Loaded from the JSON files under ``domain/data`` and validated at load;
every error names the file and the entry at fault.

Pure: reading files is the only I/O here, and workflows never call these loaders (activities do).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domain.citation import Citation, is_canonical_key, parse_citation

DATA_DIR = Path(__file__).parent / "data"

T = TypeVar("T")

StateCode = str  # ISO 3166-1 alpha-2, upper case; validated where it enters
STATE_CODE = re.compile(r"^[A-Z]{2}$")
ICCS_CODE = re.compile(r"^\d{2}(\d{2}(\d{1,2})?)?$")

MeasureKind = Literal[
    "search", "seizure", "inspection", "identify_bank_accounts", "interrogation", "information_exchange"
]
COERCIVE_MEASURES: frozenset[str] = frozenset({"search", "seizure"})

TRANSFER_GROUNDS = (
    "no_treaty", "not_national", "judgment_not_final", "insufficient_remaining_term",
    "no_dual_criminality", "outstanding_financial_obligations", "proceedings_pending",
    "sovereignty_or_security", "contrary_to_national_law", "state_declined",
)
ASSISTANCE_GROUNDS = (
    "no_treaty", "not_covered_by_treaty", "no_dual_criminality", "sovereignty_security_public_order",
    "political_offence", "military_offence", "discrimination", "ne_bis_in_idem",
    "limitation_expired", "contrary_to_national_law",
)
# Grounds a treaty may list for a state's own refusal (the rest are conditions or the system's own).
TREATY_TRANSFER_GROUNDS = frozenset(
    {"sovereignty_or_security", "contrary_to_national_law", "outstanding_financial_obligations",
     "proceedings_pending"}
)
TREATY_ASSISTANCE_GROUNDS = frozenset(ASSISTANCE_GROUNDS) - {"no_treaty", "not_covered_by_treaty",
                                                              "no_dual_criminality"}


class ReferenceDataError(ValueError):
    """Reference data that does not load: names the file and the entry."""


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- treaties -------------------------------------------------------------------------------


class Rule(_Data, Generic[T]):
    """One operative rule of a treaty, with the provision it comes from."""

    value: T
    source: str = Field(min_length=1)
    verified: bool


class Deadlines(_Data):
    """Days allowed for each waiting stage (DOMAIN.md defaults; a treaty may override)."""

    declaration: int = Field(30, gt=0)
    legal_review: int = Field(30, gt=0)
    consent: int = Field(90, gt=0)
    handover: int = Field(30, gt=0)
    review: int = Field(30, gt=0)
    information: int = Field(60, gt=0)
    execution: int = Field(90, gt=0)
    authorisation: int = Field(30, gt=0)
    reminder_before: int = Field(7, ge=0)


DEFAULT_DEADLINES_RULE = Rule[Deadlines](
    value=Deadlines(), source="treatyflow defaults (DOMAIN.md, Deadlines)", verified=True
)


class TransferRules(_Data):
    min_remaining_months: Rule[int]
    exclusive_nationality: Rule[bool]
    final_judgment: Rule[bool]
    dual_criminality: Rule[bool]
    declaration_required: Rule[bool]
    refusal_grounds: Rule[list[str]]
    handover_points: Rule[list[str]]
    deadlines: Rule[Deadlines] = DEFAULT_DEADLINES_RULE

    @field_validator("refusal_grounds")
    @classmethod
    def _known_grounds(cls, rule: Rule[list[str]]) -> Rule[list[str]]:
        unknown = set(rule.value) - TREATY_TRANSFER_GROUNDS
        if unknown:
            raise ValueError(f"refusal grounds not open to a transfer treaty: {sorted(unknown)}")
        return rule


class AssistanceRules(_Data):
    permitted_measures: Rule[list[MeasureKind]]
    dual_criminality_measures: Rule[list[MeasureKind]]
    refusal_grounds: Rule[list[str]]
    deadlines: Rule[Deadlines] = DEFAULT_DEADLINES_RULE

    @field_validator("refusal_grounds")
    @classmethod
    def _known_grounds(cls, rule: Rule[list[str]]) -> Rule[list[str]]:
        unknown = set(rule.value) - TREATY_ASSISTANCE_GROUNDS
        if unknown:
            raise ValueError(f"refusal grounds not open to an assistance treaty: {sorted(unknown)}")
        return rule


class Treaty(_Data):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    title: str = Field(min_length=1)
    kind: Literal["transfer", "assistance"]
    multilateral: bool = False
    parties: list[StateCode] = Field(min_length=2)
    signed_on: date | None = None
    in_force_on: date | None = None
    note: str = ""
    # Treaties of the same kind this one replaces between the states that are party to both
    # (the Chisinau Convention of 2002 supersedes the Minsk Convention of 1993): `resolve_treaty`
    # never picks a superseded treaty where the superseding one binds both states too.
    supersedes: list[str] = []
    transfer: TransferRules | None = None
    assistance: AssistanceRules | None = None

    @field_validator("parties")
    @classmethod
    def _parties(cls, parties: list[str]) -> list[str]:
        bad = [p for p in parties if not STATE_CODE.match(p)]
        if bad:
            raise ValueError(f"not ISO 3166-1 alpha-2 codes: {bad}")
        if len(set(parties)) != len(parties):
            raise ValueError("a party is listed twice")
        return parties

    @model_validator(mode="after")
    def _shape(self) -> Treaty:
        if not self.multilateral and len(self.parties) != 2:
            raise ValueError("a bilateral treaty has exactly two parties")
        rules = self.transfer if self.kind == "transfer" else self.assistance
        other = self.assistance if self.kind == "transfer" else self.transfer
        if rules is None or other is not None:
            raise ValueError(f"a {self.kind} treaty carries `{self.kind}` rules and no others")
        return self

    @property
    def rules(self) -> TransferRules | AssistanceRules:
        return self.transfer if self.kind == "transfer" else self.assistance  # type: ignore[return-value]

    @property
    def verified(self) -> bool:
        """True only when every operative rule was checked against the official text."""
        return all(getattr(self.rules, name).verified for name in type(self.rules).model_fields)

    @property
    def recorded_rules(self) -> list[Rule]:
        """The operative rules the registry records for this treaty: a rule it leaves out (the
        default deadlines) is treatyflow's, not the treaty's, and is not counted."""
        rules = self.rules
        return [getattr(rules, name) for name in type(rules).model_fields if name in rules.model_fields_set]

    @property
    def deadlines(self) -> Deadlines:
        return self.rules.deadlines.value


# --- ICCS, criminalisation, articles, authorities --------------------------------------------


class IccsDivision(_Data):
    code: str = Field(pattern=r"^\d{4}$")
    title: str = Field(min_length=1)


class IccsSection(_Data):
    code: str = Field(pattern=r"^\d{2}$")
    title: str = Field(min_length=1)
    divisions: list[IccsDivision] = Field(min_length=1)

    @model_validator(mode="after")
    def _divisions_in_section(self) -> IccsSection:
        stray = [d.code for d in self.divisions if not d.code.startswith(self.code)]
        if stray:
            raise ValueError(f"divisions {stray} do not belong to section {self.code}")
        return self


class IccsCatalogue(_Data):
    version: str
    source: str
    sections: list[IccsSection] = Field(min_length=1)

    @property
    def titles(self) -> dict[str, str]:
        out = {s.code: s.title for s in self.sections}
        out.update({d.code: d.title for s in self.sections for d in s.divisions})
        return out

    def is_valid(self, code: str) -> bool:
        """A section or division that is shipped, or a 5/6-digit code under a shipped division."""
        if not ICCS_CODE.match(code):
            return False
        titles = self.titles
        return code in titles if len(code) <= 4 else code[:4] in titles


class CodeEntry(_Data):
    code: str = Field(pattern=ICCS_CODE.pattern)
    note: str = ""
    source: str = Field(min_length=1)
    verified: bool


class Criminalisation(_Data):
    """Codes that are *not* criminal offences in a state (prefix match), and codes that always
    need a lawyer's review; any other valid code is presumed criminal."""

    state: StateCode = Field(pattern=STATE_CODE.pattern)
    not_criminal: list[CodeEntry] = []
    always_review: list[CodeEntry] = []


class ArticleEntry(_Data):
    """The ICCS code of one article (``188``, ``190-1``) or of one part of it (``188:2``), the
    article written as the canonical key of ``domain/citation.py``."""

    article: str = Field(min_length=1, max_length=32)
    iccs: str = Field(pattern=ICCS_CODE.pattern)
    title: str = Field(min_length=1)
    verified: bool

    @field_validator("article")
    @classmethod
    def _canonical_key(cls, article: str) -> str:
        if not is_canonical_key(article):
            parsed = parse_citation(article)
            hint = f"; write {parsed.key!r}" if parsed else ""
            raise ValueError(f"{article!r} is not a canonical article key such as '188', '190-1' or '188:2'{hint}")
        return article


class ArticleTable(_Data):
    """The mapping of a state's criminal-code articles to ICCS codes."""

    state: StateCode = Field(pattern=STATE_CODE.pattern)
    code: str = Field(min_length=1)
    source: str = Field(min_length=1)
    articles: list[ArticleEntry] = Field(min_length=1)

    def lookup(self, citation: str | Citation) -> ArticleEntry | None:
        """The entry for a citation as courts write it (``188 ч.2``, ``ст. 188``): its part's entry
        when the table has one, else its article's. None when the citation is not understood, names
        another state's code (``УК РФ`` in the KZ table), or neither entry is listed."""
        cited = parse_citation(citation) if isinstance(citation, str) else citation
        if cited is None or cited.code_of not in (None, self.state):
            return None
        entries = {entry.article: entry for entry in self.articles}
        return next((entries[key] for key in cited.lookup_keys if key in entries), None)


Role = Literal["central_authority", "prison_service", "court", "executing_authority"]


class Authority(_Data):
    id: str = Field(pattern=r"^[a-z]{2}-[a-z0-9-]{2,30}$")
    state: StateCode = Field(pattern=STATE_CODE.pattern)
    role: Role
    name: str = Field(min_length=1)
    competence: Literal["financial", "police"] | None = None

    @model_validator(mode="after")
    def _competence(self) -> Authority:
        if (self.role == "executing_authority") != (self.competence is not None):
            raise ValueError("executing authorities, and only they, carry a competence")
        if not self.id.startswith(self.state.lower() + "-"):
            raise ValueError(f"id must start with the state code: {self.state.lower()}-")
        return self


# --- the whole set, loaded once -------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    treaties: tuple[Treaty, ...]
    iccs: IccsCatalogue
    criminalisation: dict[StateCode, Criminalisation]
    articles: dict[StateCode, ArticleTable]
    authorities: tuple[Authority, ...]

    def treaty(self, treaty_id: str) -> Treaty | None:
        return next((t for t in self.treaties if t.id == treaty_id), None)

    def authorities_of(self, state: StateCode) -> list[Authority]:
        return [a for a in self.authorities if a.state == state]

    def authority(self, authority_id: str) -> Authority | None:
        return next((a for a in self.authorities if a.id == authority_id), None)

    def criminalisation_of(self, state: StateCode) -> Criminalisation:
        return self.criminalisation.get(state) or Criminalisation(state=state)

    def registry_counts(self) -> dict[str, int]:
        """The size of the loaded treaty registry: ``treaties`` and ``treaties_verified`` (those
        whose every rule is verified), ``partner_states`` (the states party to at least one
        treaty), and ``rules`` / ``rules_verified`` (the rules the registry records, default
        deadlines not counted, and how many of them are verified)."""
        rules = [r for t in self.treaties for r in t.recorded_rules]
        return {
            "treaties": len(self.treaties),
            "treaties_verified": sum(t.verified for t in self.treaties),
            "partner_states": len({p for t in self.treaties for p in t.parties}),
            "rules": len(rules),
            "rules_verified": sum(r.verified for r in rules),
        }


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceDataError(f"{path}: file missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReferenceDataError(f"{path}: not valid JSON ({exc})") from None


def _entry_name(entry: object, index: int) -> str:
    if isinstance(entry, dict):
        for key in ("id", "code", "article", "state"):
            if key in entry:
                return f"entry {index} ({key}={entry[key]!r})"
    return f"entry {index}"


def _parse(model: type[BaseModel], raw: object, where: str) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise ReferenceDataError(f"{where}: {problems}") from None


def _parse_list(model: type[BaseModel], path: Path, key: str) -> list:
    raw = _read_json(path)
    if not isinstance(raw, dict) or not isinstance(raw.get(key), list):
        raise ReferenceDataError(f"{path}: expected an object with a list `{key}`")
    return [_parse(model, entry, f"{path}: {_entry_name(entry, i)}") for i, entry in enumerate(raw[key])]


def load_reference(data_dir: Path = DATA_DIR) -> Reference:
    """Load and cross-check every reference file; raise ReferenceDataError naming file and entry."""
    treaties: list[Treaty] = _parse_list(Treaty, data_dir / "treaties.json", "treaties")
    authorities: list[Authority] = _parse_list(Authority, data_dir / "authorities.json", "authorities")
    iccs_path = data_dir / "iccs.json"
    iccs = _parse(IccsCatalogue, _read_json(iccs_path), str(iccs_path))
    assert isinstance(iccs, IccsCatalogue)
    codes = [s.code for s in iccs.sections] + [d.code for s in iccs.sections for d in s.divisions]
    for dup in sorted({c for c in codes if codes.count(c) > 1}):
        raise ReferenceDataError(f"{iccs_path}: code {dup!r} listed twice")

    criminalisation: dict[str, Criminalisation] = {}
    for path in sorted((data_dir / "criminalisation").glob("*.json")):
        table = _parse(Criminalisation, _read_json(path), str(path))
        assert isinstance(table, Criminalisation)
        if path.stem != table.state:
            raise ReferenceDataError(f"{path}: file name must be the state code {table.state}")
        for part in ("not_criminal", "always_review"):
            for i, entry in enumerate(getattr(table, part)):
                if not iccs.is_valid(entry.code):
                    raise ReferenceDataError(f"{path}: {part} entry {i} (code={entry.code!r}): unknown ICCS code")
        criminalisation[table.state] = table

    articles: dict[str, ArticleTable] = {}
    for path in sorted((data_dir / "articles").glob("*.json")):
        raw = _read_json(path)
        if isinstance(raw, dict) and isinstance(raw.get("articles"), list):  # name the entry at fault
            for i, entry in enumerate(raw["articles"]):
                _parse(ArticleEntry, entry, f"{path}: {_entry_name(entry, i)}")
        table = _parse(ArticleTable, raw, str(path))
        assert isinstance(table, ArticleTable)
        if path.stem != table.state:
            raise ReferenceDataError(f"{path}: file name must be the state code {table.state}")
        seen: set[str] = set()
        for i, entry in enumerate(table.articles):
            if not iccs.is_valid(entry.iccs):
                raise ReferenceDataError(
                    f"{path}: entry {i} (article={entry.article!r}): unknown ICCS code {entry.iccs}")
            if entry.article in seen:
                raise ReferenceDataError(f"{path}: entry {i} (article={entry.article!r}): listed twice")
            seen.add(entry.article)
        articles[table.state] = table

    ids = [t.id for t in treaties]
    for dup in {i for i in ids if ids.count(i) > 1}:
        raise ReferenceDataError(f"{data_dir / 'treaties.json'}: treaty id {dup!r} listed twice")
    authority_ids = [a.id for a in authorities]
    for dup in {i for i in authority_ids if authority_ids.count(i) > 1}:
        raise ReferenceDataError(f"{data_dir / 'authorities.json'}: authority id {dup!r} listed twice")
    states_with_central = {a.state for a in authorities if a.role == "central_authority"}
    by_id = {t.id: t for t in treaties}
    for t in treaties:
        missing = [p for p in t.parties if p not in states_with_central]
        if missing:
            raise ReferenceDataError(
                f"{data_dir / 'treaties.json'}: treaty {t.id!r}: no central authority for {missing}")
        for other in t.supersedes:
            superseded = by_id.get(other)
            if superseded is None or superseded.kind != t.kind or other == t.id:
                raise ReferenceDataError(
                    f"{data_dir / 'treaties.json'}: treaty {t.id!r}: supersedes {other!r}, which is not "
                    f"another {t.kind} treaty of the registry")
            if t.id in superseded.supersedes:
                raise ReferenceDataError(
                    f"{data_dir / 'treaties.json'}: treaty {t.id!r}: supersedes {other!r}, which supersedes it")
    return Reference(
        treaties=tuple(treaties), iccs=iccs, criminalisation=criminalisation, articles=articles,
        authorities=tuple(authorities),
    )


@cache
def reference() -> Reference:
    """The shipped reference data, loaded once per process."""
    return load_reference()
