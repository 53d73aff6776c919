"""The contract lives in the repo: docs/api.md documents every route of the API's OpenAPI
document and no other, docs/domain.md names every treaty of the registry, and the README links
both, never a path outside the repo.

docs/api.md gives each route a heading of its own, ``### `METHOD /path` `` (any heading level,
optionally followed by text), with the path exactly as the OpenAPI document spells it
(``{reference}``, ``{measure_id}``, ``{treaty_id}``). Routes named anywhere else (prose, tables,
the "Not yet built" section) are not counted. No Temporal server is needed: the app is only
built, never started."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from api.app import create_app
from treatyflow.codec import CodecKeys
from treatyflow.config import Settings

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "api.md"
DOMAIN_MD = ROOT / "docs" / "domain.md"
README = ROOT / "README.md"

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# FastAPI's own pages: served by the app, not routes of the API
FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
ROUTE_HEADING = re.compile(rf"^`({'|'.join(METHODS)}) (/[^`\s]*)`")
LOOKS_LIKE_ROUTE = re.compile(rf"\b({'|'.join(METHODS)})\s+/")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def schema_routes() -> set[tuple[str, str]]:
    # explicit codec keys: building the app must not create a key file under .data
    settings = Settings(dev_mode=True, codec_keys=CodecKeys(current="docs", keys={"docs": os.urandom(32)}))
    schema = create_app(settings).openapi()
    return {(method.upper(), path) for path, operations in schema["paths"].items() if path not in FRAMEWORK
            for method in operations if method.upper() in METHODS}


def headings(text: str) -> list[tuple[int, str]]:
    """(line number, heading text) of every Markdown heading outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            out.append((number, match.group(2)))
    return out


def documented_routes(text: str) -> list[tuple[str, str]]:
    """The routes of docs/api.md's route headings, in order (duplicates kept, to be reported).
    A heading that names a route in any other form fails: it would silently document nothing."""
    routes, malformed = [], []
    for number, heading in headings(text):
        match = ROUTE_HEADING.match(heading)
        if match:
            routes.append((match.group(1), match.group(2)))
        elif LOOKS_LIKE_ROUTE.search(heading):
            malformed.append(f"line {number}: {heading}")
    assert not malformed, ("docs/api.md: route headings are written ### `METHOD /path`; these are not:\n  "
                           + "\n  ".join(malformed))
    return routes


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def shown(routes: set[tuple[str, str]]) -> str:
    return "\n  ".join(f"{m} {p}" for m, p in sorted(routes, key=lambda r: (r[1], r[0])))


def test_every_route_of_the_api_is_documented_and_no_other():
    in_schema = schema_routes()
    documented = documented_routes(API_MD.read_text(encoding="utf-8"))
    twice = {r for r in documented if documented.count(r) > 1}
    assert not twice, f"docs/api.md documents these routes more than once:\n  {shown(twice)}"
    undocumented = in_schema - set(documented)
    assert not undocumented, (f"routes of the OpenAPI document missing from docs/api.md (add a heading "
                              f"### `METHOD /path` for each):\n  {shown(undocumented)}")
    unknown = set(documented) - in_schema
    assert not unknown, (f"docs/api.md documents routes the API does not have (list planned ones under "
                         f"'Not yet built', not as headings):\n  {shown(unknown)}")


def test_the_route_headings_are_parsed_as_such():
    """The parser itself: a route heading counts, a malformed one fails, prose and code do not count."""
    text = ("# Title\n### `GET /v1/a/{x}` — read\n#### `POST /v1/b`\nSee `GET /v1/c` in prose.\n"
            "```sh\n# `GET /v1/d`\n```\n")
    assert documented_routes(text) == [("GET", "/v1/a/{x}"), ("POST", "/v1/b")]
    with pytest.raises(AssertionError, match="route headings"):
        documented_routes("### POST /v1/transfers\n")


def test_the_domain_page_names_every_treaty_of_the_registry():
    treaties = json.loads((ROOT / "domain" / "data" / "treaties.json").read_text(encoding="utf-8"))["treaties"]
    text = DOMAIN_MD.read_text(encoding="utf-8")
    missing = sorted(t["id"] for t in treaties if f"`{t['id']}`" not in text)
    assert not missing, f"docs/domain.md does not name these treaties of domain/data/treaties.json: {missing}"


def test_the_readme_links_the_contract_in_the_repo():
    text = README.read_text(encoding="utf-8")
    assert "../shared" not in text, "README.md points outside the repo (../shared): link docs/api.md, docs/domain.md"
    targets = {target.split("#")[0] for target in LINK.findall(text)}
    for page in ("docs/api.md", "docs/domain.md"):
        assert page in targets, f"README.md does not link {page}"


@pytest.mark.parametrize("page", [README, API_MD, DOMAIN_MD], ids=lambda p: p.name)
def test_links_stay_in_the_repo_and_resolve(page: Path):
    """Relative links name files of the repo, and their anchors headings of those files."""
    problems = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if ROOT not in linked.parents or not linked.is_file():
            problems.append(f"{target}: not a file of the repo")
            continue
        if anchor and linked.suffix == ".md":
            anchors = {slug(h) for _, h in headings(linked.read_text(encoding="utf-8"))}
            if anchor not in anchors:
                problems.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not problems, f"{page.relative_to(ROOT)}: broken links:\n  " + "\n  ".join(problems)
