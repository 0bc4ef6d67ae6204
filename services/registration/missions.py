"""Which trade mission a unit joins (FAQ II, DESIGN section 5).

- Central-enterprise units join the Central Enterprise Trade Mission and the sub-mission of their group.
- Institutions under the National Health Commission join the NHC mission.
- Everyone else joins by residence: the division code in the credit code picks the regional mission
  (Shenzhen, Dalian, Qingdao, Ningbo and Xiamen have their own) and, where there is one, the sub-mission.
- Overseas units choose their mission.
- A referral code puts the unit in an industrial mission, which reviews and manages it; its statistics
  roll into the mission the rules above give.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.registration.validation import division_code, invalid
from shared.catalogue import Mission, MissionCatalogue
from shared.types import Affiliation, MissionKind


@dataclass(frozen=True)
class MissionPlacement:
    mission: str  # reviews and manages the unit
    sub_mission: str | None
    statistics_mission: str  # where the unit is counted
    statistics_sub_mission: str | None
    referral_code: str | None = None


def place_unit(
    catalogue: MissionCatalogue,
    *,
    affiliation: Affiliation,
    credit_code: str | None,
    chosen_mission: str | None = None,
    chosen_sub_mission: str | None = None,
    referral_code: str | None = None,
) -> MissionPlacement:
    """Apply the rules; ``credit_code`` must already be validated (domestic units)."""
    home_mission, home_sub = _home_mission(
        catalogue, affiliation, credit_code, chosen_mission, chosen_sub_mission
    )
    if not referral_code:
        return MissionPlacement(home_mission, home_sub, home_mission, home_sub)
    industrial = catalogue.by_referral_code(referral_code)
    if industrial is None:
        raise invalid(
            "mission.referral_code",
            "unknown_referral_code",
            "unknown referral code",
            "推荐码无效，请向所属行业交易团核实",
        )
    return MissionPlacement(
        industrial.code, None, home_mission, home_sub, referral_code=referral_code.strip().upper()
    )


def _home_mission(
    catalogue: MissionCatalogue,
    affiliation: Affiliation,
    credit_code: str | None,
    chosen_mission: str | None,
    chosen_sub_mission: str | None,
) -> tuple[str, str | None]:
    if affiliation is Affiliation.CENTRAL_ENTERPRISE:
        (mission,) = catalogue.of_kind(MissionKind.CENTRAL_ENTERPRISE)
        if not chosen_sub_mission or mission.sub_mission(chosen_sub_mission) is None:
            raise invalid(
                "mission.sub_mission",
                "central_group_required",
                "choose the central enterprise group the unit belongs to",
                "请选择所属中央企业集团（交易分团）",
            )
        return mission.code, chosen_sub_mission
    if affiliation is Affiliation.NHC:
        (mission,) = catalogue.of_kind(MissionKind.NHC)
        return mission.code, _optional_sub_mission(mission, chosen_sub_mission)
    if affiliation is Affiliation.OVERSEAS:
        mission_found = catalogue.get(chosen_mission or "")
        if mission_found is None or mission_found.kind is MissionKind.INDUSTRIAL:
            raise invalid(
                "mission.mission",
                "mission_required",
                "choose the trade mission to join",
                "请选择要加入的交易团",
            )
        return mission_found.code, _optional_sub_mission(mission_found, chosen_sub_mission)
    # By residence.
    if credit_code is None:
        raise invalid(
            "credit_code",
            "credit_code_required",
            "a domestic unit needs its credit code",
            "请填写统一社会信用代码",
        )
    placed = catalogue.by_division(division_code(credit_code))
    if placed is None:
        raise invalid(
            "credit_code",
            "unknown_division",
            "the credit code names no region we know",
            "统一社会信用代码中的行政区划代码无法识别",
        )
    mission, sub = placed
    return mission.code, sub.code if sub else None


def _optional_sub_mission(mission: Mission, code: str | None) -> str | None:
    if code and mission.sub_mission(code) is None:
        raise invalid(
            "mission.sub_mission",
            "unknown_sub_mission",
            f"{code} is not a sub-mission of {mission.name_en}",
            f"{code}不是{mission.name_zh}的交易分团",
        )
    return code
