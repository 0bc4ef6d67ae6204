"""The edition and the trade-mission catalogue: data files loaded at start, not code.

Editions live in ``shared/data/editions/<code>.toml`` (deadlines as Beijing wall-clock times, fees in
fen); the missions in ``shared/data/missions.toml``. Both are validated into frozen pydantic models.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time
from functools import cached_property, lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.settings import Settings
from shared.types import FeeKind, MissionKind, PaymentMethod


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Deadlines(_Frozen):
    registration_closes: datetime
    qr_payment_closes: datetime
    b2b_payment_closes: datetime
    transfer_payment_closes: datetime
    expo_opens: datetime
    expo_closes: datetime


class Fees(_Frozen):
    standard: int = Field(gt=0)
    revalidation: int = Field(gt=0)
    preferential_reissue: int = Field(gt=0)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


class OnsitePickup(_Frozen):
    """Where and when overseas buyers collect their certificates on site (FAQ VIII). The Q&A says they
    collect them on site but not where or when: the organiser sets it in the edition file, and the
    dispatch email tells the buyer. Days and hours are wall-clock times in the edition's time zone."""

    place_zh: str
    place_en: str
    address_zh: str
    address_en: str
    first_day: date
    last_day: date
    opens: time
    closes: time

    @model_validator(mode="after")
    def _ordered(self) -> OnsitePickup:
        if self.last_day < self.first_day or self.closes <= self.opens:
            raise ValueError(
                "onsite_pickup: the last day must not precede the first, nor close before it opens"
            )
        return self

    def shifted(self, years: int) -> OnsitePickup:
        return self.model_copy(
            update={
                "first_day": _years_later(self.first_day, years),
                "last_day": _years_later(self.last_day, years),
            }
        )


class Edition(_Frozen):
    code: str
    number: int
    name_zh: str
    name_en: str
    timezone: str
    previous_edition: str | None = None
    preferential_reissue_edition: str | None = None
    deadlines: Deadlines
    fees: Fees
    onsite_pickup: OnsitePickup

    @model_validator(mode="before")
    @classmethod
    def _localise_deadlines(cls, data: Any) -> Any:
        """Wall-clock times in the file become aware instants in the edition's time zone."""
        zone = ZoneInfo(data["timezone"])
        data["deadlines"] = {
            name: value if value.tzinfo else value.replace(tzinfo=zone)
            for name, value in data["deadlines"].items()
        }
        return data

    def payment_deadline(self, method: PaymentMethod) -> datetime:
        return {
            PaymentMethod.QR: self.deadlines.qr_payment_closes,
            PaymentMethod.B2B: self.deadlines.b2b_payment_closes,
            PaymentMethod.TRANSFER: self.deadlines.transfer_payment_closes,
        }[method]

    @property
    def latest_payment_deadline(self) -> datetime:
        """Until a method is chosen, a registration may still pay by the method that closes last."""
        return max(self.payment_deadline(method) for method in PaymentMethod)

    def shifted(self, years: int) -> Edition:
        """The same calendar ``years`` later: a rehearsal of a past edition runs on today's clock."""
        if years == 0:
            return self
        moved = {
            name: instant.replace(year=instant.year + years)
            for name, instant in self.deadlines.model_dump().items()
        }
        return self.model_copy(
            update={"deadlines": Deadlines(**moved), "onsite_pickup": self.onsite_pickup.shifted(years)}
        )

    def with_payment_deadline(self, at: datetime) -> Edition:
        """Every payment method closing at ``at`` (a rehearsal's deadline storm); the rest unchanged."""
        moved = dict.fromkeys(("qr_payment_closes", "b2b_payment_closes", "transfer_payment_closes"), at)
        return self.model_copy(update={"deadlines": self.deadlines.model_copy(update=moved)})

    def fee(self, kind: FeeKind) -> int:
        amount: int = getattr(self.fees, kind.value)
        return amount

    def registration_open(self, now: datetime) -> bool:
        return now < self.deadlines.registration_closes

    def local(self, instant: datetime) -> datetime:
        """An instant as Beijing (the edition's) wall-clock time, for messages to buyers."""
        return instant.astimezone(ZoneInfo(self.timezone))


class SubMission(_Frozen):
    code: str
    name_zh: str
    name_en: str
    division_codes: tuple[str, ...] = ()


class Mission(_Frozen):
    code: str
    kind: MissionKind
    name_zh: str
    name_en: str
    division_codes: tuple[str, ...] = ()
    referral_codes: tuple[str, ...] = ()
    sub_missions: tuple[SubMission, ...] = Field(default=(), alias="sub_mission")

    def sub_mission(self, code: str) -> SubMission | None:
        return next((sub for sub in self.sub_missions if sub.code == code), None)


class MissionCatalogue(_Frozen):
    missions: tuple[Mission, ...] = Field(alias="mission")

    @cached_property
    def _by_code(self) -> dict[str, Mission]:
        return {mission.code: mission for mission in self.missions}

    @cached_property
    def _by_referral_code(self) -> dict[str, Mission]:
        return {code: mission for mission in self.missions for code in mission.referral_codes}

    def get(self, code: str) -> Mission | None:
        return self._by_code.get(code)

    def of_kind(self, kind: MissionKind) -> list[Mission]:
        return [mission for mission in self.missions if mission.kind is kind]

    def by_referral_code(self, referral_code: str) -> Mission | None:
        return self._by_referral_code.get(referral_code.strip().upper())

    def by_division(self, division_code: str) -> tuple[Mission, SubMission | None] | None:
        """The regional mission (and sub-mission) of a 6-digit division code: longest prefix wins,
        so Shenzhen (4403) beats Guangdong (44)."""
        best: tuple[int, Mission] | None = None
        for mission in self.of_kind(MissionKind.REGIONAL):
            for prefix in mission.division_codes:
                if division_code.startswith(prefix) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), mission)
        if best is None:
            return None
        mission = best[1]
        sub = max(
            (
                (len(prefix), sub)
                for sub in mission.sub_missions
                for prefix in sub.division_codes
                if division_code.startswith(prefix)
            ),
            default=None,
            key=lambda pair: pair[0],
        )
        return mission, sub[1] if sub else None


def years_until_open(edition: Edition, now: datetime) -> int:
    """The smallest whole-year shift that leaves the edition's registration open at ``now``."""
    years = 0
    while not edition.shifted(years).registration_open(now):
        years += 1
    return years


def _data_file(*parts: str) -> Any:
    return resources.files("shared").joinpath("data", *parts)


@lru_cache
def load_edition(code: str) -> Edition:
    data_file = _data_file("editions", f"{code}.toml")
    if not data_file.is_file():
        raise LookupError(f"no edition {code!r} in shared/data/editions")
    return Edition.model_validate(tomllib.loads(data_file.read_text(encoding="utf-8")))


def current_edition(settings: Settings) -> Edition:
    """The edition this deployment serves, with its rehearsal shift (and rehearsal payment deadline,
    if one is set) applied."""
    edition = load_edition(settings.edition).shifted(settings.edition_year_shift)
    if settings.rehearsal_payment_deadline is not None:
        edition = edition.with_payment_deadline(settings.rehearsal_payment_deadline)
    return edition


@lru_cache
def load_missions() -> MissionCatalogue:
    text = _data_file("missions.toml").read_text(encoding="utf-8")
    return MissionCatalogue.model_validate(tomllib.loads(text))
