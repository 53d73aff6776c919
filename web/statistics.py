"""The statistics page and its CSV export: the caller state's caseload as the API's statistics give
it (``GET /v1/stats``, called in-process), drawn on the server as bar charts with the numbers beside
them, and the same caseload figures as rows of a CSV file that a spreadsheet opens."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from babel.numbers import format_decimal
from fastapi import APIRouter, Request, Response

from api import common
from api.errors import unavailable
from web.labels import LABELS, N_
from web.pages import language_of, render, secured, signed_in, through_api
from web.session import read_session

router = APIRouter(include_in_schema=False)

DAY = 86_400
# the CSV's columns (docs/api.md, GET /v1/stats): codes as the API gives them, a label in the page's
# language, and the numbers (days with one decimal, a point as the separator)
COLUMNS = ("kind", "figure", "stage", "partner", "action", "label", "cases", "median_days", "p90_days")


@router.get("/statistics")
async def statistics_page(request: Request) -> Response:
    """The caller state's counts (visibility counts, shared for a few seconds) and its caseload
    (listed, shared for TREATYFLOW_CASELOAD_MAX_AGE), as bar charts drawn on the server with the
    numbers beside them, a table of cases by stage and partner, and a link to the CSV export."""
    who = await signed_in(request)
    stats = await common.stats(through_api(request), who)
    lang = language_of(request, read_session(request))

    def days(seconds: int) -> str:
        return format_decimal(seconds / DAY, format="0.0", locale=lang.code)

    return render(request, "statistics.html", stats=stats, days=days,
                  max_age=round(request.app.state.settings.caseload_max_age), charts=[
        (kind, [(title, sorted(numbers.items(), key=lambda kv: -kv[1]))
                for title, numbers in ((N_("By stage"), counts["by_stage"]), (N_("By outcome"), counts["by_outcome"]),
                                       (N_("By partner state"), counts["by_partner"]))])
        for kind, counts in stats["kinds"].items()],
        caseload={kind: caseload(counts) for kind, counts in stats["kinds"].items()}
        if stats["caseload_as_of"] else None)  # None: the first listing of the scope is still under way


def caseload(figures: dict[str, Any]) -> dict[str, Any]:
    """A kind's caseload figures as the page shows them: the stage × partner table (with each row's
    total), the overdue actions by action and by partner (most first), the times per stage."""
    by_stage = figures["by_stage_and_partner"]
    partners = sorted({p for row in by_stage.values() for p in row})

    def most_first(numbers: dict[str, int]) -> list[tuple[str, int]]:
        return sorted(numbers.items(), key=lambda kv: -kv[1])

    def times(spreads: dict[str, dict[str, int]]) -> list[tuple[str, int, int, int]]:
        return [(stage, s["median"], s["p90"], s["cases"]) for stage, s in spreads.items()]

    return {"partners": partners,
            "by_stage_and_partner": [(stage, [row.get(p, 0) for p in partners], sum(row.values()))
                                     for stage, row in by_stage.items()],
            "overdue_by_action": most_first(figures["overdue_by_action"]),
            "overdue_by_partner": most_first(figures["overdue_by_partner"]),
            "time_in_stage": times(figures["stage_seconds"]),
            "time_in_current_stage": times(figures["current_stage_seconds"])}


@router.get("/statistics.csv")
async def statistics_csv(request: Request) -> Response:
    """The caseload figures of the statistics page as CSV (``COLUMNS``; UTF-8 with a byte order
    mark, so that Excel reads the Russian labels right), downloaded as a file."""
    who = await signed_in(request)
    stats = await common.stats(through_api(request), who)
    if stats["caseload_as_of"] is None:  # the first listing of the scope is still under way
        raise unavailable("the statistics could not be counted in time; try again")
    lang = language_of(request, read_session(request))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(csv_rows(stats, lambda code: lang.gettext(LABELS[code]) if code in LABELS else ""))
    name = f"caseload-{stats['state']}-{stats['caseload_as_of'][:10]}.csv"
    return secured(request, Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                                     headers={"Content-Disposition": f'attachment; filename="{name}"'}))


def csv_rows(stats: dict[str, Any], label: Callable[[str], str]) -> Iterator[list[Any]]:
    """One row per number of the caseload figures, in ``COLUMNS``' order."""
    for kind, figures in stats["kinds"].items():
        for stage, row in figures["by_stage_and_partner"].items():
            for partner, n in row.items():
                yield [kind, "by_stage_and_partner", stage, partner, "", label(stage), n, "", ""]
        for action, n in figures["overdue_by_action"].items():
            yield [kind, "overdue_by_action", "", "", action, label(action), n, "", ""]
        for partner, n in figures["overdue_by_partner"].items():
            yield [kind, "overdue_by_partner", "", partner, "", "", n, "", ""]
        for figure, spreads in (("time_in_stage", figures["stage_seconds"]),
                                ("time_in_current_stage", figures["current_stage_seconds"])):
            for stage, s in spreads.items():
                yield [kind, figure, stage, "", "", label(stage), s["cases"], f"{s['median'] / DAY:.1f}",
                       f"{s['p90'] / DAY:.1f}"]
