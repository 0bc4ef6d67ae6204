"""Certificate holders of earlier editions (FAQ VII): their records, imported from data files; the
lookup that fills a returning buyer's affiliation; re-validation checked field by field; fee kinds.

**The data format** (``shared/data/previous/<edition>.jsonl``): JSON Lines, one certificate holder a
line, every column of ``PreviousBuyer`` but ``imported_at`` as a key (``null`` where a column is
empty): ``edition`` (e.g. ``ciie5``), ``certificate_no`` (``B05-0001234``: ``B``, the edition's number
in two digits, seven digits), ``name``, ``id_type`` and ``id_number`` (a resident ID checked by its
checksum), ``personnel_label``, ``photo_sha256`` (the SHA-256, lower-case hex, of the photo file's
bytes), ``entrance_date`` (ISO, ``2022-11-05``), the affiliation as it was (``unit_kind``,
``affiliation``, ``unit_name``, ``credit_code`` for domestic units (checksum verified),
``country``, ``foreign_registration_no`` for overseas units, ``address``, ``industry``), the mission
(``mission``, ``sub_mission``, ``referral_code``: codes of ``shared/data/missions.toml``) and
``lost_or_damaged``. Blank lines are skipped.

A file is imported whole or not at all: the first bad line refuses it, naming the line and the
field. Rows are upserted by certificate number, so importing a file again changes nothing.

    python -m services.registration.previous import shared/data/previous/ciie5.jsonl ...
    python -m services.registration.previous import-shipped     # every file in shared/data/previous
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from importlib import resources
from importlib.resources.abc import Traversable
from itertools import islice
from pathlib import Path
from typing import Annotated, Any, NoReturn

from pydantic import (
    BaseModel,
    ConfigDict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registration import validation
from services.registration.models import PersonRegistration, PreviousBuyer, Unit
from shared.catalogue import Edition, load_edition, load_missions
from shared.db import Database, utcnow
from shared.http import ApiError
from shared.settings import get_settings
from shared.types import Affiliation, FeeKind, IdType, MissionKind, UnitKind

# ------------------------------------------------------------------------------------------ editions


def edition_number(code: str) -> int:
    """The number of an edition: from its file if shipped, otherwise from its code (``ciie5`` → 5);
    past editions' files need not be shipped."""
    try:
        return load_edition(code).number
    except LookupError:
        pass
    match = re.fullmatch(r"[a-z]+([0-9]{1,2})", code)
    if match is None:
        raise ValueError(f"{code!r} is not an edition code (like ciie5)")
    return int(match.group(1))


def certificate_number_pattern(edition_code: str) -> str:
    """Certificate numbers of an edition: ``B05-0001234`` for the 5th."""
    return rf"B{edition_number(edition_code):02d}-[0-9]{{7}}"


def _series(edition_code: str) -> str:
    return re.sub(r"[0-9]+$", "", edition_code).upper() or edition_code  # ciie5 -> CIIE


def _ordinal_en(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_DIGITS_ZH = "零一二三四五六七八九"


def _number_zh(n: int) -> str:
    if n < 10:
        return _DIGITS_ZH[n]
    tens, ones = divmod(n, 10)
    return f"{'' if tens == 1 else _DIGITS_ZH[tens]}十{_DIGITS_ZH[ones] if ones else ''}"


def edition_label(edition_code: str) -> tuple[str, str]:
    """``("the 5th CIIE", "第五届进博会")`` for ``ciie5``."""
    number = edition_number(edition_code)
    series = _series(edition_code)
    series_zh = "进博会" if series == "CIIE" else series
    return f"the {_ordinal_en(number)} {series}", f"第{_number_zh(number)}届{series_zh}"


# ------------------------------------------------------------------------------------------ the format

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class PreviousBuyerRecord(BaseModel):
    """One line of a previous edition's file: a certificate holder as the certificate office issued it.

    Missions are checked against today's catalogue loosely (the codes exist, the sub-mission is the
    mission's, a referral code is the industrial mission's, the kind suits the affiliation), not by
    re-placing the unit: a past edition's placement is a fact, whatever the rules say now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    edition: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)]
    certificate_no: Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, max_length=24)]
    name: Annotated[Line, StringConstraints(max_length=100)]
    id_type: IdType
    id_number: Annotated[str, StringConstraints(max_length=32)]
    personnel_label: Annotated[Line, StringConstraints(max_length=64)]
    photo_sha256: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9a-f]{64}$")]
    entrance_date: date
    unit_kind: UnitKind
    affiliation: Affiliation
    unit_name: Annotated[Line, StringConstraints(max_length=200)]
    credit_code: str | None
    country: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z]{2}$")]
    foreign_registration_no: Annotated[Line, StringConstraints(max_length=64)] | None
    address: Annotated[Line, StringConstraints(max_length=300)]
    industry: Annotated[Line, StringConstraints(max_length=100)]
    mission: Annotated[Line, StringConstraints(max_length=64)]
    sub_mission: Annotated[Line, StringConstraints(max_length=96)] | None
    referral_code: Annotated[Line, StringConstraints(to_upper=True, max_length=16)] | None
    lost_or_damaged: bool

    @field_validator("edition")
    @classmethod
    def _edition(cls, value: str) -> str:
        edition_number(value)  # ValueError: not an edition code
        return value

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str, info: ValidationInfo) -> str:
        id_type = info.data.get("id_type")
        if id_type is None:
            return value  # the id_type is refused on its own
        try:
            return validation.id_number(id_type, value)
        except ApiError as exc:
            raise ValueError(exc.body.message) from exc

    @field_validator("credit_code")
    @classmethod
    def _credit_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validation.credit_code(value)
        except ApiError as exc:
            raise ValueError(exc.body.message) from exc

    @model_validator(mode="after")
    def _consistent(self) -> PreviousBuyerRecord:
        pattern = certificate_number_pattern(self.edition)
        if not re.fullmatch(pattern, self.certificate_no):
            number = edition_number(self.edition)
            _refuse(
                "certificate_no",
                f"{self.certificate_no!r} is not a certificate number of {self.edition}"
                f" (they look like B{number:02d}-0001234)",
            )
        if self.affiliation is Affiliation.OVERSEAS:
            if self.credit_code is not None:
                _refuse("credit_code", "an overseas unit has no Unified Social Credit Code")
            if self.foreign_registration_no is None:
                _refuse("foreign_registration_no", "an overseas unit needs its registration number")
            if self.country == "CN":
                _refuse("country", "an overseas unit is registered outside China (CN)")
        else:
            if self.credit_code is None:
                _refuse("credit_code", "a domestic unit needs its Unified Social Credit Code")
            if self.foreign_registration_no is not None:
                _refuse("foreign_registration_no", "a domestic unit has no foreign registration number")
            if self.country != "CN":
                _refuse("country", "a domestic unit's country is CN")
        self._check_mission()
        return self

    def _check_mission(self) -> None:
        catalogue = load_missions()
        mission = catalogue.get(self.mission)
        if mission is None:
            _refuse("mission", f"no trade mission {self.mission!r} in shared/data/missions.toml")
        if self.sub_mission is not None and mission.sub_mission(self.sub_mission) is None:
            _refuse("sub_mission", f"{self.sub_mission!r} is not a sub-mission of {mission.code}")
        if self.referral_code is not None:
            industrial = catalogue.by_referral_code(self.referral_code)
            if industrial is None or industrial.code != mission.code:
                _refuse("referral_code", f"{self.referral_code!r} is not a referral code of {mission.code}")
            return
        expected = {
            Affiliation.RESIDENCE: (MissionKind.REGIONAL,),
            Affiliation.CENTRAL_ENTERPRISE: (MissionKind.CENTRAL_ENTERPRISE,),
            Affiliation.NHC: (MissionKind.NHC,),
            Affiliation.OVERSEAS: (MissionKind.REGIONAL, MissionKind.CENTRAL_ENTERPRISE, MissionKind.NHC),
        }[self.affiliation]
        if mission.kind not in expected:
            _refuse(
                "mission",
                f"a {self.affiliation.value} unit without a referral code is not in a"
                f" {mission.kind.value} mission ({mission.code})",
            )
        if self.affiliation is Affiliation.CENTRAL_ENTERPRISE and self.sub_mission is None:
            _refuse("sub_mission", "a central enterprise's unit is in its group's sub-mission")

    def columns(self) -> dict[str, Any]:
        return self.model_dump()


def _refuse(field: str, message: str) -> NoReturn:
    raise PydanticCustomError("previous_buyer", "{field}: {message}", {"field": field, "message": message})


class ImportRefused(ValueError):
    """A file not imported, and why: the line (1-based) and what is wrong with it."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}, line {line}: {reason}; nothing in the file was imported")
        self.source = source
        self.line = line
        self.reason = reason


def _reason(error: ValidationError) -> str:
    reasons = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        if item["type"] == "missing":
            reasons.append(f"{where}: missing (give null for an empty column)")
        elif item["type"] == "extra_forbidden":
            reasons.append(f"{where}: not a column of the format")
        else:
            message = item["msg"].removeprefix("Value error, ")
            reasons.append(f"{where}: {message}" if where else message)
    return "; ".join(reasons)


def _parse(source: str, lines: Iterable[str]) -> Iterator[tuple[int, PreviousBuyerRecord]]:
    """Each record with its line number; ImportRefused at the first bad line."""
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportRefused(source, number, f"not JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(data, dict):
            raise ImportRefused(source, number, "not a JSON object")
        try:
            record = PreviousBuyerRecord.model_validate(data)
        except ValidationError as exc:
            raise ImportRefused(source, number, _reason(exc)) from exc
        if record.certificate_no in seen:
            raise ImportRefused(
                source,
                number,
                f"certificate_no: {record.certificate_no} is already on line {seen[record.certificate_no]}",
            )
        seen[record.certificate_no] = number
        yield number, record


@dataclass(frozen=True)
class ImportResult:
    records: int
    changed: int  # rows inserted or updated


_BATCH = 500
OpenLines = Callable[[], AbstractContextManager[Iterable[str]]]


def _batches(records: Iterator[PreviousBuyerRecord]) -> Iterator[list[PreviousBuyerRecord]]:
    while batch := list(islice(records, _BATCH)):
        yield batch


async def _import(db: Database, source: str, open_lines: OpenLines) -> ImportResult:
    """Validate every line first (nothing is written if one is bad), then upsert in one transaction."""
    with open_lines() as lines:
        records = sum(1 for _ in _parse(source, lines))
    changed = 0
    async with db.transaction() as session:
        with open_lines() as lines:  # read again: a large file is never held in memory
            for batch in _batches(record for _, record in _parse(source, lines)):
                numbers = [record.certificate_no for record in batch]
                existing = {
                    row.certificate_no: row
                    for row in await session.scalars(
                        select(PreviousBuyer).where(PreviousBuyer.certificate_no.in_(numbers))
                    )
                }
                for record in batch:
                    columns = record.columns()
                    row = existing.get(record.certificate_no)
                    if row is None:
                        session.add(PreviousBuyer(**columns))
                        changed += 1
                    elif any(getattr(row, name) != value for name, value in columns.items()):
                        for name, value in columns.items():
                            setattr(row, name, value)
                        row.imported_at = utcnow()
                        changed += 1
    return ImportResult(records=records, changed=changed)


async def import_previous(db: Database, path: Path) -> int:
    """Import one file of a previous edition's certificate holders; answers how many rows it added
    or changed (0 when the file was imported before). Raises ImportRefused, naming the line, and
    imports nothing if any line is bad."""
    return (await _import_path(db, path)).changed


async def _import_path(db: Database, path: Path | Traversable) -> ImportResult:
    return await _import(db, str(path), lambda: path.open(encoding="utf-8"))


def shipped_files() -> list[Traversable]:
    """The previous editions' files shipped in ``shared/data/previous``, in name order."""
    folder = resources.files("shared").joinpath("data", "previous")
    return sorted(
        (item for item in folder.iterdir() if item.name.endswith(".jsonl") and item.is_file()),
        key=lambda item: item.name,
    )


async def import_shipped(db: Database) -> int:
    """Import every shipped file (idempotent: safe at every start); answers the rows added or changed."""
    return sum([(await _import_path(db, item)).changed for item in shipped_files()])


# ------------------------------------------------------------------------------------------ lookup


def _edition_rank(edition: Edition) -> dict[str, int]:
    """The editions whose certificates count, the latest first."""
    ranked = [edition.previous_edition, edition.preferential_reissue_edition]
    return {code: rank for rank, code in enumerate(ranked) if code is not None}


async def last_certificate(
    session: AsyncSession, edition: Edition, id_type: IdType, id_number: str
) -> PreviousBuyer | None:
    """The holder's last certificate of the editions that count for ``edition`` (the previous one
    before the preferential-reissue one; in an edition, a usable card before a lost one, then the
    latest number). ``id_number`` as validated (``validation.id_number``)."""
    rank = _edition_rank(edition)
    if not rank:
        return None
    rows = await session.scalars(
        select(PreviousBuyer).where(
            PreviousBuyer.id_type == id_type,
            PreviousBuyer.id_number == id_number,
            PreviousBuyer.edition.in_(rank),
        )
    )
    best: PreviousBuyer | None = None
    best_key: tuple[int, bool, str] | None = None
    for row in rows:
        key = (-rank[row.edition], not row.lost_or_damaged, row.certificate_no)
        if best_key is None or key > best_key:
            best, best_key = row, key
    return best


def no_previous_certificate(edition: Edition) -> ApiError:
    names = [edition_label(code) for code in _edition_rank(edition)]
    en = " or ".join(name for name, _ in names) or "an earlier edition"
    zh = "或".join(name for _, name in names) or "往届进博会"
    return ApiError(
        404,
        "no_previous_certificate",
        f"no certificate of {en} is recorded for this document: register as a new buyer",
        f"未查询到该证件持有人{zh}的证件信息，请按新采购商报名",
        field="id_number",
    )


async def holder_certificate(
    session: AsyncSession, edition: Edition, certificate_no: str, id_type: IdType, id_number: str
) -> PreviousBuyer:
    """The certificate ``certificate_no`` if it is this person's (by document) and of an edition that
    counts; 404 ``no_previous_certificate`` otherwise (whose card a number is stays unsaid)."""
    row = await session.get(PreviousBuyer, certificate_no.strip().upper())
    if (
        row is None
        or row.edition not in _edition_rank(edition)
        or (row.id_type, row.id_number) != (id_type, id_number)
    ):
        raise no_previous_certificate(edition)
    return row


def mask_id_number(id_number: str) -> str:
    """Enough for the holder to recognise it: the last four (and, of a long number, the first three)."""
    front = 3 if len(id_number) >= 12 else 0
    back = 4 if len(id_number) >= 8 else 2
    return id_number[:front] + "*" * (len(id_number) - front - back) + id_number[-back:]


def mask_name(name: str) -> str:
    """The first character, or the first word of a Latin-script name, the rest hidden."""
    words = name.split()
    if len(words) > 1:
        return words[0] + " " + " ".join("*" * len(word) for word in words[1:])
    return name[:1] + "*" * max(len(name) - 1, 1)


# ------------------------------------------------------------------------------------------ fees


def is_revalidatable(previous: PreviousBuyer, edition: Edition) -> bool:
    return previous.edition == edition.previous_edition and not previous.lost_or_damaged


def is_preferentially_reissuable(previous: PreviousBuyer, edition: Edition) -> bool:
    return previous.edition == edition.preferential_reissue_edition and not previous.lost_or_damaged


def fee_kind_for(previous: PreviousBuyer | None, current_edition: Edition) -> FeeKind:
    """The fee a holder of ``previous`` pays in ``current_edition``: re-validation for a card of the
    previous edition, the preferential reissue rate for one of the edition before that, the standard
    fee otherwise (no card, a lost or damaged one, an older edition's). For a card of the previous
    edition it assumes ``revalidation_refusal`` found nothing changed; if it refused, the buyer
    registers for a new certificate at the standard fee."""
    if previous is None:
        return FeeKind.STANDARD
    if is_revalidatable(previous, current_edition):
        return FeeKind.REVALIDATION
    if is_preferentially_reissuable(previous, current_edition):
        return FeeKind.PREFERENTIAL_REISSUE
    return FeeKind.STANDARD


# ------------------------------------------------------------------------------------------ re-validation


@dataclass(frozen=True)
class _Field:
    code: str  # ApiError.field
    en: str
    zh: str


_FIELDS = {
    field.code: field
    for field in (
        _Field("name", "name", "姓名"),
        _Field("unit_name", "affiliation (unit name)", "所属单位名称"),
        _Field("credit_code", "affiliation's Unified Social Credit Code", "所属单位统一社会信用代码"),
        _Field("registration_no", "affiliation's registration number", "所属单位注册号"),
        _Field("mission", "trade mission", "所属交易团"),
        _Field("sub_mission", "trade sub-mission", "所属交易分团"),
        _Field("personnel_label", "personnel label", "人员标签"),
        _Field("photo", "photo", "照片"),
        _Field("entrance_date", "entrance date", "入场日期"),
    )
}


def _text(value: str | None) -> str:
    """Compared as a person reads it: full-width and half-width alike, case and spacing ignored."""
    return "".join(unicodedata.normalize("NFKC", value or "").casefold().split())


def _code(value: str | None) -> str:
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", value or "")).upper()


def _expo_day(day: date) -> tuple[int, int]:
    """The day of entrance as the card means it: the expo day (editions are held on the same days of
    November, and a rehearsal moves the calendar by whole years), not the year."""
    return day.month, day.day


def _changed(previous: PreviousBuyer, field: str, edition_en: str, edition_zh: str) -> ApiError:
    label = _FIELDS[field]
    return ApiError(
        409,
        "revalidation_field_changed",
        f"the {label.en} differs from {edition_en}'s certificate {previous.certificate_no}:"
        " re-validation needs unchanged data; register for a new certificate instead",
        f"{label.zh}与{edition_zh}证件（{previous.certificate_no}）信息不一致，证件延续使用须证件信息不变，"
        "请改为办理新证件",
        field=field,
    )


def revalidation_refusal(
    previous: PreviousBuyer,
    *,
    edition: Edition,
    name: str,
    unit_name: str,
    credit_code_or_registration_no: str | None,
    mission: str,
    sub_mission: str | None,
    personnel_label: str,
    photo_sha256: str | None,
    entrance_date: date | None,
) -> ApiError | None:
    """Why ``previous`` cannot be re-validated in ``edition`` with this data, or None if it can
    (FAQ VII). Refusals, all 409:

    - ``not_revalidatable`` (field ``revalidate_certificate_no``): the card is not of the previous
      edition (one of the edition before is reissued at the preferential rate instead);
    - ``certificate_lost`` (same field): the card was reported lost or damaged;
    - ``revalidation_field_changed``: the first field, in the FAQ's order, that differs from the card
      (``field``: ``name``, ``unit_name``, ``credit_code`` or ``registration_no``, ``mission``,
      ``sub_mission``, ``personnel_label``, ``photo``, ``entrance_date``), named in both languages.

    ``photo_sha256`` and ``entrance_date`` may be None while not yet given (a photo is uploaded after
    the person registers): they are then not compared, so check again once they are known. Texts are
    compared as read (full-width/half-width, case and spacing aside); codes without spaces or dashes;
    the entrance date by its day and month (the 5th CIIE's 2022-11-05 is the 6th's 2023-11-05: the
    same expo day, whereas the year always differs).
    """
    edition_en, edition_zh = edition_label(previous.edition)
    if previous.edition != edition.previous_edition:
        current_en, current_zh = (
            edition_label(edition.previous_edition) if edition.previous_edition else ("", "")
        )
        reissue = previous.edition == edition.preferential_reissue_edition
        return ApiError(
            409,
            "not_revalidatable",
            f"certificate {previous.certificate_no} is of {edition_en}: only certificates of"
            f" {current_en or 'the previous edition'} are re-validated"
            + ("; it is reissued at the preferential rate instead" if reissue else ""),
            f"证件{previous.certificate_no}为{edition_zh}证件，仅{current_zh or '上届'}证件可延续使用"
            + ("，该证件可按优惠价格补办" if reissue else ""),
            field="revalidate_certificate_no",
        )
    if previous.lost_or_damaged:
        return ApiError(
            409,
            "certificate_lost",
            f"certificate {previous.certificate_no} was reported lost or damaged and cannot be"
            " re-validated: register for a new certificate",
            f"证件{previous.certificate_no}已挂失或损坏，不能延续使用，请办理新证件",
            field="revalidate_certificate_no",
        )
    identifier = "credit_code" if previous.credit_code is not None else "registration_no"
    checks: list[tuple[str, bool]] = [
        ("name", _text(name) == _text(previous.name)),
        ("unit_name", _text(unit_name) == _text(previous.unit_name)),
        (
            identifier,
            _code(credit_code_or_registration_no)
            == _code(previous.credit_code or previous.foreign_registration_no),
        ),
        ("mission", mission == previous.mission),
        ("sub_mission", (sub_mission or None) == previous.sub_mission),
        ("personnel_label", _text(personnel_label) == _text(previous.personnel_label)),
        ("photo", photo_sha256 is None or photo_sha256.lower() == previous.photo_sha256),
        (
            "entrance_date",
            entrance_date is None or _expo_day(entrance_date) == _expo_day(previous.entrance_date),
        ),
    ]
    for field, same in checks:
        if not same:
            return _changed(previous, field, edition_en, edition_zh)
    return None


def revalidation_refusal_for(
    previous: PreviousBuyer, edition: Edition, person: PersonRegistration, unit: Unit
) -> ApiError | None:
    """``revalidation_refusal`` with a registered person's and their unit's rows."""
    return revalidation_refusal(
        previous,
        edition=edition,
        name=person.name,
        unit_name=unit.name,
        credit_code_or_registration_no=unit.credit_code or unit.foreign_registration_no,
        mission=unit.mission,
        sub_mission=unit.sub_mission,
        personnel_label=person.personnel_label,
        photo_sha256=person.photo_sha256,
        entrance_date=person.entrance_date,
    )


# ------------------------------------------------------------------------------------------ command


async def _run(files: Sequence[Path | Traversable]) -> int:
    db = Database(get_settings().service_database_url("registration"))
    try:
        for file in files:
            try:
                result = await _import_path(db, file)
            except (ImportRefused, OSError) as exc:
                print(f"refused: {exc}", file=sys.stderr)
                return 1
            print(f"{file}: {result.records} records, {result.changed} new or changed")
    finally:
        await db.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.registration.previous",
        description="Import previous editions' certificate holders into the registration database "
        "(EXPO_* settings); each file is imported whole or not at all, and again changes nothing.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("import", help="import the given JSON Lines files")
    one.add_argument("files", nargs="+", type=Path, metavar="FILE")
    commands.add_parser("import-shipped", help="import every file in shared/data/previous")
    args = parser.parse_args(argv)
    files: Sequence[Path | Traversable] = args.files if args.command == "import" else shipped_files()
    return asyncio.run(_run(files))


if __name__ == "__main__":
    sys.exit(main())
