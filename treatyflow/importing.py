"""`treatyflow import FILE`: a central authority's list of applicants (CSV or XLSX, the template's
columns: docs/api.md, "Bulk intake") opened as transfer cases through the running API's
``POST /v1/transfers/batch`` — a progress bar of cases judged, as the API's result lines arrive,
then a summary and every row's problems named by the file's own row and column. Running it again
on the same file opens nothing new. `treatyflow template FILE` writes the empty template.

The authority's API key is read from TREATYFLOW_API_KEY or the file ``--key-file`` names, never
from the command line (where other users of the machine could read it)."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

import httpx
from tqdm import tqdm

from domain.applicants import FileRefused, column_of, read_applicants, write_applicants

IMPORT_DESCRIPTION = """Open the transfer cases of a list of applicants (CSV or XLSX with the template's columns,
English or Russian headings: docs/api.md, "Bulk intake") through the running API, as the
central authority whose key is in TREATYFLOW_API_KEY (or --key-file). Every row is judged
exactly as a single POST /v1/transfers: a row already opened answers "existing", so running
it again is safe. A file over 2,000 cases or 16 MiB, or with a column the template does not
have, is refused whole; so is one whose cases come to more than 16 MiB as the API's JSON lines
(split it). Exit status: 0 when every row was opened or existed, 1 when some
rows were not (each is listed with its row, column and problem), 2 when nothing was sent or
the API refused the whole file."""


def run_import(path: Path, api: str, key_file: Path | None, out: TextIO = sys.stdout,
               err: TextIO = sys.stderr, progress: bool | None = None) -> int:
    key = _key(key_file)
    if key is None:
        print("treatyflow import: no API key: set TREATYFLOW_API_KEY to your authority's key (or pass --key-file)",
              file=err)
        return 2
    try:
        applicants = read_applicants(path.read_bytes())
    except OSError as exc:
        print(f"treatyflow import: {path}: {exc.strerror}", file=err)
        return 2
    except FileRefused as exc:
        print(f"treatyflow import: {path} is refused whole, nothing was opened: {exc}", file=err)
        return 2
    if not applicants.rows:
        print(f"treatyflow import: {path} holds no cases (only the headings)", file=err)
        return 2
    counts: Counter[str] = Counter()
    problems: list[str] = []
    bar = tqdm(total=len(applicants.rows), unit="case", desc="judged", file=err,
               disable=not (err.isatty() if progress is None else progress))
    try:
        with httpx.Client(base_url=api, timeout=httpx.Timeout(30.0, read=120.0)) as http, \
                http.stream("POST", "/v1/transfers/batch", content=applicants.lines(),
                            headers={"authorization": f"Bearer {key}", "content-type": "application/x-ndjson"}
                            ) as response:
            if response.status_code != 200:
                response.read()
                print(f"treatyflow import: the API refused the whole file ({response.status_code}), nothing was "
                      f"opened: {_message(response)}", file=err)
                return 2
            for text in response.iter_lines():
                if not text.strip():
                    continue
                result = json.loads(text)
                row = applicants.rows[result["row"] - 1]
                counts[result["result"]] += 1
                for problem in result["problems"]:
                    problems.append(f"row {row.number} ({result['reference'] or 'no reference'}), "
                                    f"{column_of(problem['field'], row.columns)}: {problem['message']}")
                bar.update(1)
    except httpx.HTTPError as exc:
        bar.close()
        print(f"treatyflow import: the API at {api} could not be reached or stopped answering "
              f"({type(exc).__name__}); rows already opened answer \"existing\" when you run it again", file=err)
        return 2
    bar.close()
    judged = sum(counts.values())
    print(f"{path.name}: {len(applicants.rows)} rows — {counts['created']} opened, {counts['existing']} already "
          f"open, {counts['invalid']} invalid, {counts['refused']} refused", file=out)
    for line in problems:
        print(f"  {line}", file=out)
    if judged < len(applicants.rows):
        print(f"treatyflow import: the API answered {judged} of {len(applicants.rows)} rows; run it again",
              file=err)
        return 2
    return 0 if counts["invalid"] + counts["refused"] == 0 else 1


def run_template(path: Path, language: str) -> int:
    """The empty template, CSV or XLSX by the file's suffix."""
    form = "xlsx" if path.suffix.lower() == ".xlsx" else "csv"
    path.write_bytes(write_applicants([], language, form))  # type: ignore[arg-type]
    print(f"wrote the {'Russian' if language == 'ru' else 'English'} template to {path}")
    return 0


def _key(key_file: Path | None) -> str | None:
    if key_file is not None:
        return key_file.read_text().strip() or None
    return os.environ.get("TREATYFLOW_API_KEY", "").strip() or None


def _message(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
