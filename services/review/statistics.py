"""Registration statistics per trade mission and sub-mission, from the registration service's counts.

The registration service owns units and people; it answers ``GET /internal/statistics`` with counts
grouped by placement (mission, sub-mission, statistics mission, statistics sub-mission) and status
(``shared.records.RegistrationStatisticsRecord``). This module turns them into rows.

**Columns.** Units, by their review status:

- ``units_registered``: every unit of the edition; ``units_under_review``, ``units_approved``,
  ``units_rejected`` (rejected units may change their data and resubmit): these three add up to it.

People, by their registration status (``shared.types.RegistrationStatus``):

- ``people_registered``: every registration of the edition, whatever became of it.
- ``under_review``: waiting on a review, of the unit or of the person: the sum of
  - ``awaiting_unit_review``: ``submitted`` and ``unit_rejected`` (their unit's review has not
    passed: it is under way, or the unit was rejected and may resubmit), and
  - ``awaiting_personnel_review``: ``to_be_reviewed`` (paid; the personnel review is pending).
- ``unpaid``: ``unpaid`` and ``awaiting_transfer_confirmation`` (a transfer voucher is with finance:
  no money is counted until finance confirms it).
- ``paid``: the payment was received and has not been refunded: ``to_be_reviewed``, ``approved`` and
  every certificate status, and ``review_failed`` (the refund is under way: the money is held until
  it completes, when the person moves to ``refunded``).
- ``approved``: the personnel review passed: ``approved``, ``certificate_in_production`` and every
  certificate status below.
- ``certificates_issued``: ``certificate_issued``, ``certificate_reactivated`` (re-validation: last
  edition's card is valid again), ``shipped``, ``awaiting_collection``, ``onsite_pickup``,
  ``delivered``.
- ``review_failed`` (personnel review failed, refund under way), ``refunded``, ``expired`` (the
  payment deadline passed unpaid), ``withdrawn`` (withdrew before paying; a paid withdrawal is refunded
  and ends as ``refunded``).

Each person is in exactly one of ``awaiting_unit_review``, ``unpaid``, ``paid``, ``refunded``,
``expired``, ``withdrawn``: these add up to ``people_registered``. ``awaiting_personnel_review``,
``approved`` and ``review_failed`` are parts of ``paid``; ``certificates_issued`` is part of
``approved``.

**Industrial missions.** A unit that joined with a referral code is managed by an industrial mission
and counted in its regional, Central Enterprise or NHC mission (``statistics_mission``). It counts in
both rows: the industrial mission's row (its own units), and the statistics mission's row and its
statistics sub-mission's row. Under each mission or sub-mission row that received such units, a
``from_industrial`` row per industrial mission says how much of the row came from that industrial
mission's units (the part the statistics mission does not manage itself); the row minus its
``from_industrial`` rows is what the mission manages itself.

**Rows**, in catalogue order: each mission, its ``from_industrial`` rows, then each of its
sub-missions with theirs; every mission and sub-mission of the catalogue is listed, with zeros where
no one registered. A mission's units without a sub-mission (an overseas unit may choose none) have a
sub-mission row of their own ("no sub-mission") when the mission has sub-missions.

**Totals** count every unit and person once (an industrial unit is in two mission rows, so the totals
are not the sum of the mission rows: they are the sum of the non-industrial missions' rows). For one
mission's view, the totals are that mission's row.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from shared.catalogue import MissionCatalogue
from shared.db import utcnow
from shared.exports import Column
from shared.http import internal_headers
from shared.records import RegistrationStatisticsRecord
from shared.service import ServiceContext
from shared.types import MissionKind, RegistrationStatus, UnitStatus

S = RegistrationStatus

CERTIFICATE_ISSUED = frozenset(
    {
        S.CERTIFICATE_ISSUED,
        S.CERTIFICATE_REACTIVATED,
        S.SHIPPED,
        S.AWAITING_COLLECTION,
        S.ONSITE_PICKUP,
        S.DELIVERED,
    }
)
APPROVED = CERTIFICATE_ISSUED | {S.APPROVED, S.CERTIFICATE_IN_PRODUCTION}
AWAITING_UNIT_REVIEW = frozenset({S.SUBMITTED, S.UNIT_REJECTED})
AWAITING_PERSONNEL_REVIEW = frozenset({S.TO_BE_REVIEWED})

# Which statuses each people column counts (see the module's docstring).
PEOPLE_COLUMNS: dict[str, frozenset[RegistrationStatus]] = {
    "people_registered": frozenset(RegistrationStatus),
    "under_review": AWAITING_UNIT_REVIEW | AWAITING_PERSONNEL_REVIEW,
    "awaiting_unit_review": AWAITING_UNIT_REVIEW,
    "awaiting_personnel_review": AWAITING_PERSONNEL_REVIEW,
    "unpaid": frozenset({S.UNPAID, S.AWAITING_TRANSFER_CONFIRMATION}),
    "paid": AWAITING_PERSONNEL_REVIEW | APPROVED | {S.REVIEW_FAILED},
    "approved": APPROVED,
    "certificates_issued": CERTIFICATE_ISSUED,
    "review_failed": frozenset({S.REVIEW_FAILED}),
    "refunded": frozenset({S.REFUNDED}),
    "expired": frozenset({S.EXPIRED}),
    "withdrawn": frozenset({S.WITHDRAWN}),
}
UNIT_COLUMNS: dict[str, frozenset[UnitStatus]] = {
    "units_registered": frozenset(UnitStatus),
    "units_under_review": frozenset({UnitStatus.UNDER_REVIEW}),
    "units_approved": frozenset({UnitStatus.APPROVED}),
    "units_rejected": frozenset({UnitStatus.REJECTED}),
}

FIGURE_COLUMNS: list[Column] = [
    ("units_registered", "Units registered", "报名单位数"),
    ("units_under_review", "Units under review", "单位审核中"),
    ("units_approved", "Units approved", "单位审核通过"),
    ("units_rejected", "Units not approved", "单位审核未通过"),
    ("people_registered", "People registered", "报名人数"),
    ("under_review", "Under review", "审核中"),
    ("awaiting_unit_review", "Awaiting unit review", "待单位审核"),
    ("awaiting_personnel_review", "Awaiting personnel review", "待人员审核"),
    ("unpaid", "Unpaid", "未缴费"),
    ("paid", "Paid", "已缴费"),
    ("approved", "Approved", "人员审核通过"),
    ("certificates_issued", "Certificates issued", "已制证"),
    ("review_failed", "Personnel review failed", "人员审核未通过"),
    ("refunded", "Refunded", "已退款"),
    ("expired", "Payment deadline passed", "逾期未缴费"),
    ("withdrawn", "Withdrawn", "已撤回"),
]


class Level(StrEnum):
    MISSION = "mission"
    SUB_MISSION = "sub_mission"
    FROM_INDUSTRIAL = "from_industrial"  # part of the row above: the units of one industrial mission
    TOTAL = "total"


LEVEL_LABELS: dict[Level, str] = {
    Level.MISSION: "交易团 Mission",
    Level.SUB_MISSION: "交易分团 Sub-mission",
    Level.FROM_INDUSTRIAL: "其中：行业交易团 Of which: industrial mission",
    Level.TOTAL: "合计 Total",
}
KIND_LABELS: dict[MissionKind, str] = {
    MissionKind.REGIONAL: "地方交易团 Regional",
    MissionKind.CENTRAL_ENTERPRISE: "中央企业交易团 Central Enterprise",
    MissionKind.NHC: "国家卫生健康委交易团 NHC",
    MissionKind.INDUSTRIAL: "行业交易团 Industrial",
}
NO_SUB_MISSION = ("未分团", "No sub-mission")

ROW_COLUMNS: list[Column] = [
    ("level", "Row", "行类型"),
    ("mission", "Mission code", "交易团代码"),
    ("mission_name_zh", "Mission", "交易团"),
    ("mission_name_en", "Mission (English)", "交易团英文名称"),
    ("mission_kind", "Mission kind", "交易团类型"),
    ("sub_mission", "Sub-mission code", "交易分团代码"),
    ("sub_mission_name_zh", "Sub-mission", "交易分团"),
    ("sub_mission_name_en", "Sub-mission (English)", "交易分团英文名称"),
    ("industrial_mission", "Industrial mission code", "行业交易团代码"),
    ("industrial_mission_name_zh", "Industrial mission", "行业交易团"),
    ("industrial_mission_name_en", "Industrial mission (English)", "行业交易团英文名称"),
]
EXPORT_COLUMNS: list[Column] = ROW_COLUMNS + FIGURE_COLUMNS


class Figures(BaseModel):
    """The counts of a row (see the module's docstring for what each counts)."""

    units_registered: int = 0
    units_under_review: int = 0
    units_approved: int = 0
    units_rejected: int = 0
    people_registered: int = 0
    under_review: int = Field(default=0, description="awaiting_unit_review + awaiting_personnel_review")
    awaiting_unit_review: int = Field(default=0, description="submitted, unit_rejected")
    awaiting_personnel_review: int = Field(default=0, description="to_be_reviewed")
    unpaid: int = Field(default=0, description="unpaid, awaiting_transfer_confirmation")
    paid: int = Field(
        default=0, description="to_be_reviewed, approved, every certificate status, review_failed"
    )
    approved: int = Field(default=0, description="approved, certificate_in_production, certificates issued")
    certificates_issued: int = Field(
        default=0,
        description="certificate_issued, certificate_reactivated, shipped, awaiting_collection,"
        " onsite_pickup, delivered",
    )
    review_failed: int = 0
    refunded: int = 0
    expired: int = 0
    withdrawn: int = 0


class StatisticsRow(Figures):
    level: Level
    mission: str | None = None
    mission_kind: MissionKind | None = None
    mission_name_zh: str | None = None
    mission_name_en: str | None = None
    sub_mission: str | None = Field(default=None, description="None in a mission's 'no sub-mission' row")
    sub_mission_name_zh: str | None = None
    sub_mission_name_en: str | None = None
    industrial_mission: str | None = Field(
        default=None, description="from_industrial rows: the industrial mission whose units these are"
    )
    industrial_mission_name_zh: str | None = None
    industrial_mission_name_en: str | None = None


class Statistics(BaseModel):
    edition: str
    mission: str | None = Field(description="the one mission shown; None: every mission")
    generated_at: datetime
    rows: list[StatisticsRow]
    totals: StatisticsRow = Field(description="every unit and person once")


# ------------------------------------------------------------------------------------------ counting


def people_figures(status: RegistrationStatus, people: int) -> Counter[str]:
    return Counter({key: people for key, statuses in PEOPLE_COLUMNS.items() if status in statuses})


def unit_figures(status: UnitStatus, units: int) -> Counter[str]:
    return Counter({key: units for key, statuses in UNIT_COLUMNS.items() if status in statuses})


@dataclass(frozen=True)
class _Placement:
    mission: str
    sub_mission: str | None
    statistics_mission: str
    statistics_sub_mission: str | None

    @property
    def rolled_up(self) -> bool:
        """Managed by one mission (an industrial one) and counted in another."""
        return self.statistics_mission != self.mission


@dataclass
class _Cell:
    figures: Counter[str] = field(default_factory=Counter)
    from_industrial: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def _groups(record: RegistrationStatisticsRecord) -> dict[_Placement, Counter[str]]:
    groups: defaultdict[_Placement, Counter[str]] = defaultdict(Counter)
    for people in record.people:
        placement = _Placement(
            people.mission, people.sub_mission, people.statistics_mission, people.statistics_sub_mission
        )
        groups[placement] += people_figures(people.status, people.people)
    for units in record.units:
        placement = _Placement(
            units.mission, units.sub_mission, units.statistics_mission, units.statistics_sub_mission
        )
        groups[placement] += unit_figures(units.status, units.units)
    return groups


def build_statistics(
    record: RegistrationStatisticsRecord,
    catalogue: MissionCatalogue,
    *,
    mission: str | None = None,
    generated_at: datetime | None = None,
) -> Statistics:
    """The rows of every mission (or of ``mission`` only, with the industrial units rolled into it)."""
    groups = _groups(record)
    missions: defaultdict[str, _Cell] = defaultdict(_Cell)
    sub_missions: defaultdict[tuple[str, str | None], _Cell] = defaultdict(_Cell)
    totals: Counter[str] = Counter()
    for placement, figures in groups.items():
        missions[placement.mission].figures += figures
        sub_missions[placement.mission, placement.sub_mission].figures += figures
        if placement.rolled_up:
            for cell in (
                missions[placement.statistics_mission],
                sub_missions[placement.statistics_mission, placement.statistics_sub_mission],
            ):
                cell.figures += figures
                cell.from_industrial[placement.mission] += figures
        if mission is None or mission in (placement.mission, placement.statistics_mission):
            totals += figures

    rows: list[StatisticsRow] = []
    codes = [m.code for m in catalogue.missions]
    codes += sorted(set(missions) - set(codes))  # codes the catalogue no longer has: shown, not lost
    for code in codes:
        if mission is not None and code != mission:
            continue
        rows += _mission_rows(code, catalogue, missions[code], sub_missions, codes)
    return Statistics(
        edition=record.edition,
        mission=mission,
        generated_at=generated_at or utcnow(),
        rows=rows,
        totals=StatisticsRow(level=Level.TOTAL, **totals),
    )


def _mission_rows(
    code: str,
    catalogue: MissionCatalogue,
    cell: _Cell,
    sub_missions: Mapping[tuple[str, str | None], _Cell],
    order: list[str],
) -> list[StatisticsRow]:
    found = catalogue.get(code)
    names: dict[str, Any] = {
        "mission": code,
        "mission_kind": found.kind if found else None,
        "mission_name_zh": found.name_zh if found else code,
        "mission_name_en": found.name_en if found else code,
    }
    rows = [StatisticsRow(level=Level.MISSION, **names, **cell.figures)]
    rows += _breakdown(cell, catalogue, names, order)
    known = [sub.code for sub in found.sub_missions] if found else []
    seen = sorted(sub for mission, sub in sub_missions if mission == code and sub is not None)
    subs: list[str] = known + [sub for sub in seen if sub not in known]
    for sub_code in subs:
        sub = found.sub_mission(sub_code) if found else None
        sub_names = names | {
            "sub_mission": sub_code,
            "sub_mission_name_zh": sub.name_zh if sub else sub_code,
            "sub_mission_name_en": sub.name_en if sub else sub_code,
        }
        sub_cell = sub_missions.get((code, sub_code), _Cell())
        rows.append(StatisticsRow(level=Level.SUB_MISSION, **sub_names, **sub_cell.figures))
        rows += _breakdown(sub_cell, catalogue, sub_names, order)
    unplaced = sub_missions.get((code, None))
    if subs and unplaced is not None and any(unplaced.figures.values()):
        sub_names = names | {
            "sub_mission_name_zh": NO_SUB_MISSION[0],
            "sub_mission_name_en": NO_SUB_MISSION[1],
        }
        rows.append(StatisticsRow(level=Level.SUB_MISSION, **sub_names, **unplaced.figures))
        rows += _breakdown(unplaced, catalogue, sub_names, order)
    return rows


def _breakdown(
    cell: _Cell, catalogue: MissionCatalogue, names: dict[str, Any], order: list[str]
) -> list[StatisticsRow]:
    rows = []
    for code in sorted(cell.from_industrial, key=lambda c: order.index(c) if c in order else len(order)):
        industrial = catalogue.get(code)
        rows.append(
            StatisticsRow(
                level=Level.FROM_INDUSTRIAL,
                **names,
                industrial_mission=code,
                industrial_mission_name_zh=industrial.name_zh if industrial else code,
                industrial_mission_name_en=industrial.name_en if industrial else code,
                **cell.from_industrial[code],
            )
        )
    return rows


# ------------------------------------------------------------------------------------------ exports


def export_rows(statistics: Statistics) -> list[dict[str, Any]]:
    """The rows and then the totals, for ``shared.exports`` with ``EXPORT_COLUMNS``."""
    return [_export_row(row) for row in [*statistics.rows, statistics.totals]]


def _export_row(row: StatisticsRow) -> dict[str, Any]:
    values = row.model_dump()
    values["level"] = LEVEL_LABELS[row.level]
    values["mission_kind"] = KIND_LABELS[row.mission_kind] if row.mission_kind else None
    return values


# ------------------------------------------------------------------------------------------ the source


async def fetch_registration_statistics(ctx: ServiceContext, edition: str) -> RegistrationStatisticsRecord:
    """The registration service's counts (raises httpx errors: the API answers 503)."""
    response = await ctx.http.get(
        f"{ctx.settings.registration_url}/internal/statistics",
        params={"edition": edition},
        headers=internal_headers(ctx.settings),
    )
    response.raise_for_status()
    return RegistrationStatisticsRecord.model_validate_json(response.content)
