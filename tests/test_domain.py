"""The domain rules, as a buyer or the organiser would notice them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploy.local.demo import demo_credit_code
from services.notification.templates import pickup_params, render
from services.registration import validation
from services.registration.api import ensure_registration_open
from services.registration.missions import place_unit
from shared import signing
from shared.catalogue import load_edition, load_missions, years_until_open
from shared.contracts import Step
from shared.http import ApiError
from shared.records import is_mainland_mobile
from shared.types import Affiliation, FeeKind, IdType, PaymentMethod

CATALOGUE = load_missions()
EDITION = load_edition("ciie6")


def place(division: str, **kwargs: object) -> tuple[str, str | None, str, str | None]:
    placement = place_unit(
        CATALOGUE,
        affiliation=Affiliation.RESIDENCE,
        credit_code=demo_credit_code(division),
        **kwargs,  # type: ignore[arg-type]
    )
    return (
        placement.mission,
        placement.sub_mission,
        placement.statistics_mission,
        placement.statistics_sub_mission,
    )


def refusal(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str | None]:
    return exc.value.status, exc.value.body.code, exc.value.body.field


# ---------------------------------------------------------------- the 6th CIIE's calendar and fees


def test_deadlines_are_midnight_beijing_time() -> None:
    deadlines = EDITION.deadlines
    assert deadlines.registration_closes == datetime(2023, 9, 30, 16, 0, tzinfo=UTC)  # 24:00 Beijing, 30 Sep
    assert EDITION.payment_deadline(PaymentMethod.QR) == datetime(2023, 10, 15, 16, 0, tzinfo=UTC)
    assert EDITION.payment_deadline(PaymentMethod.B2B) == EDITION.payment_deadline(PaymentMethod.QR)
    assert EDITION.payment_deadline(PaymentMethod.TRANSFER) == datetime(2023, 10, 12, 16, 0, tzinfo=UTC)
    assert EDITION.latest_payment_deadline == EDITION.payment_deadline(PaymentMethod.QR)


def test_fees_are_integer_fen_per_kind() -> None:
    fees = [EDITION.fee(kind) for kind in FeeKind]
    assert all(isinstance(fee, int) and fee > 0 for fee in fees)
    assert EDITION.fee(FeeKind.REVALIDATION) < EDITION.fee(FeeKind.STANDARD)


def test_registration_closes_with_a_message_that_there_is_no_onsite_registration() -> None:
    with pytest.raises(ApiError) as refused:
        ensure_registration_open(EDITION)  # 2023 is over
    assert refused.value.status == 409 and refused.value.body.code == "registration_closed"
    assert "no on-site registration" in refused.value.body.message
    assert "不设现场报名" in refused.value.body.message_zh
    assert "2023-10-01 00:00" in refused.value.body.message  # shown in Beijing time


def test_a_rehearsal_moves_the_calendar_by_whole_years() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    years = years_until_open(EDITION, now)
    rehearsal = EDITION.shifted(years)
    assert years == 4 and rehearsal.registration_open(now)
    assert rehearsal.deadlines.registration_closes - EDITION.deadlines.registration_closes > timedelta(
        days=4 * 365
    )
    assert EDITION.local(rehearsal.deadlines.registration_closes).strftime("%m-%d %H:%M") == "10-01 00:00"


# ---------------------------------------------------------------- which mission a unit joins


def test_residence_picks_the_regional_mission_and_sub_mission_from_the_credit_code() -> None:
    assert place("310115") == ("shanghai", "shanghai-pudong", "shanghai", "shanghai-pudong")
    mission, sub, _, _ = place("320505")  # Suzhou, Jiangsu
    assert (mission, sub) == ("jiangsu", "jiangsu-suzhou")


@pytest.mark.parametrize(
    ("division", "own_mission"),
    [
        ("440305", "shenzhen"),
        ("210202", "dalian"),
        ("370202", "qingdao"),
        ("330203", "ningbo"),
        ("350203", "xiamen"),
    ],
)
def test_cities_under_separate_state_planning_have_their_own_missions(
    division: str, own_mission: str
) -> None:
    assert place(division)[0] == own_mission


def test_central_enterprises_join_the_central_mission_under_their_group() -> None:
    group = CATALOGUE.get("central-enterprises").sub_missions[0].code  # type: ignore[union-attr]
    placement = place_unit(
        CATALOGUE, affiliation=Affiliation.CENTRAL_ENTERPRISE, credit_code=demo_credit_code("110102"),
        chosen_sub_mission=group,
    )  # fmt: skip
    assert (placement.mission, placement.sub_mission) == ("central-enterprises", group)
    with pytest.raises(ApiError) as refused:
        place_unit(
            CATALOGUE, affiliation=Affiliation.CENTRAL_ENTERPRISE, credit_code=demo_credit_code("110102")
        )
    assert refusal(refused) == (422, "central_group_required", "mission.sub_mission")


def test_nhc_institutions_join_the_nhc_mission() -> None:
    placement = place_unit(CATALOGUE, affiliation=Affiliation.NHC, credit_code=demo_credit_code("110105"))
    assert placement.mission == "nhc"


def test_a_referral_code_joins_an_industrial_mission_whose_statistics_roll_up_by_residence() -> None:
    industrial = next(m for m in CATALOGUE.missions if m.referral_codes)
    mission, sub, statistics, statistics_sub = place(
        "440305", referral_code=industrial.referral_codes[0].lower()
    )
    assert (mission, sub) == (industrial.code, None)
    assert (statistics, statistics_sub) == ("shenzhen", place("440305")[1])
    with pytest.raises(ApiError) as refused:
        place("440305", referral_code="NOSUCHCODE")
    assert refusal(refused) == (422, "unknown_referral_code", "mission.referral_code")


def test_overseas_units_choose_a_mission_but_not_an_industrial_one() -> None:
    placement = place_unit(
        CATALOGUE, affiliation=Affiliation.OVERSEAS, credit_code=None, chosen_mission="shanghai"
    )
    assert placement.mission == "shanghai"
    industrial = next(m for m in CATALOGUE.missions if m.referral_codes)
    with pytest.raises(ApiError):
        place_unit(
            CATALOGUE, affiliation=Affiliation.OVERSEAS, credit_code=None, chosen_mission=industrial.code
        )


# ---------------------------------------------------------------- what buyers type


def test_credit_code_checksum_is_verified() -> None:
    good = demo_credit_code()
    assert validation.credit_code(good.lower()) == good
    broken = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(ApiError) as refused:
        validation.credit_code(broken)
    assert refusal(refused) == (422, "invalid_credit_code", "credit_code")
    assert refused.value.body.message_zh != refused.value.body.message  # both languages


def test_resident_id_numbers_are_checked_and_other_documents_shape_checked() -> None:
    assert validation.id_number(IdType.RESIDENT_ID, "11010519491231002x") == "11010519491231002X"
    with pytest.raises(ApiError):
        validation.id_number(IdType.RESIDENT_ID, "110105194912310021")
    assert validation.id_number(IdType.PASSPORT, " e1234567 ") == "E1234567"
    with pytest.raises(ApiError):
        validation.id_number(IdType.PASSPORT, "12")


def test_mobiles_are_normalised_and_sms_goes_to_mainland_numbers_only() -> None:
    assert validation.mobile("138 1234 5678") == "+8613812345678"
    assert is_mainland_mobile(validation.mobile("13812345678"))
    hong_kong = validation.mobile("+852 5123 4567")
    assert not is_mainland_mobile(hong_kong)
    with pytest.raises(ApiError) as refused:
        validation.mobile("12345")
    assert refusal(refused) == (422, "invalid_mobile", "mobile")


# ---------------------------------------------------------------- messages and signatures


def test_messages_name_the_registration_and_show_deadlines_in_beijing_time() -> None:
    subject, zh, en = render(
        Step.UNIT_APPROVED, {"registration_id": "R1", "deadline": "2023-10-15T16:00:00+00:00"}
    )
    assert "R1" in subject and "R1" in zh and "R1" in en
    assert "2023-10-16 00:00" in zh and "2023-10-16 00:00" in en


# Steps recorded on the timeline without a message to the buyer.
SILENT_STEPS = {Step.CERTIFICATE_MAKING, Step.CERTIFICATE_MADE, Step.DELIVERED}
# What each step's message is given by the workflows, as a registration would give it (ISO instants in UTC).
DEADLINES = {"deadline": "2023-10-15T16:00:00+00:00", "transfer_deadline": "2023-10-12T16:00:00+00:00"}
STEP_PARAMS: dict[Step, list[dict[str, str]]] = {
    Step.REGISTERED: [{}],
    Step.UNIT_APPROVED: [DEADLINES],
    Step.UNIT_REJECTED: [{"reason": "统一社会信用代码与单位名称不符"}],
    Step.UNIT_RESUBMITTED: [{}],
    Step.UNIT_CHANGED: [{}],
    Step.DEADLINE_EXTENDED: [DEADLINES],
    Step.VOUCHER_UPLOADED: [{"order_no": "P7K2M4Q9XJ3PA"}],
    Step.TRANSFER_REJECTED: [{"reason": "汇款金额不符", "order_no": "P7K2M4Q9XJ3PA", **DEADLINES}],
    Step.PAID: [{"order_no": "P7K2M4Q9XJ3PA"}],
    Step.PAYMENT_EXPIRED: [{}],
    Step.PERSON_CHANGED: [
        {"revision_id": "V1", "substitution": "false"},
        {"revision_id": "V2", "substitution": "true"},
    ],
    Step.REVIEW_PASSED: [{}],
    Step.REVIEW_FAILED: [{"reason": "照片不符合要求"}],
    Step.REFUNDED: [
        {"refund_no": "F1", "order_no": "P7K2M4Q9XJ3PA"},
        {"refund_no": "F2", "order_no": "P7K2M4Q9XJ3PA", "invoice_voided": "I1", "invoice_issued": "I2"},
        {"refund_no": "F3", "order_no": "P7K2M4Q9XJ3PA", "invoice_voided": "I1"},
    ],
    Step.CERTIFICATE_REACTIVATED: [{"certificate_no": "B05-0000042"}],
    Step.DISPATCHED: [
        {
            "certificate_no": "B06-0000001",
            "delivery_method": "express",
            "carrier": "SANDBOX-EXPRESS",
            "tracking_no": "SX000000000001",
        },
        {"certificate_no": "B06-0000002", "delivery_method": "mission_collection"},
        # The place and hours of an on-site pickup come from the edition (the activity adds them).
        {"certificate_no": "B06-0000003", "delivery_method": "onsite_pickup", **pickup_params(EDITION)},
    ],
    Step.WITHDRAWN: [{"requested_by": "buyer"}],
}


def test_every_step_the_buyer_is_told_of_has_a_complete_message_in_both_languages() -> None:
    assert set(STEP_PARAMS) == set(Step) - SILENT_STEPS  # a new step needs a message (and a case here)
    for step, cases in STEP_PARAMS.items():
        for params in cases:
            subject, zh, en = render(step, {"registration_id": "R7K2M4Q9XJ3PA", **params})
            for text in (zh, en):
                assert "R7K2M4Q9XJ3PA" in text, (step, text)
                assert "{" not in text and "}" not in text and "—" not in text, (step, text)
            assert "R7K2M4Q9XJ3PA" in subject


def test_payment_messages_give_both_deadlines_in_beijing_time() -> None:
    for step, params in [
        (Step.UNIT_APPROVED, DEADLINES),
        (Step.DEADLINE_EXTENDED, DEADLINES),
        (Step.TRANSFER_REJECTED, {"reason": "汇款金额不符", "order_no": "P1", **DEADLINES}),
    ]:
        _, zh, en = render(step, {"registration_id": "R1", **params})
        for text in (zh, en):
            # 16:00 UTC is midnight in Beijing: QR/B2B until 16 October 00:00, transfer until 13 October 00:00
            assert "2023-10-16 00:00" in text and "2023-10-13 00:00" in text, (step, text)
            assert text.index("2023-10-16 00:00") < text.index("2023-10-13 00:00"), (step, text)
    _, zh, en = render(
        Step.TRANSFER_REJECTED,
        {"registration_id": "R1", "reason": "汇款金额不符", "order_no": "P1", **DEADLINES},
    )
    assert "汇款金额不符" in zh and "P1" in zh and "P1" in en


def test_substitution_and_reactivation_messages_say_what_happened() -> None:
    _, changed_zh, changed_en = render(
        Step.PERSON_CHANGED, {"registration_id": "R1", "substitution": "false"}
    )
    _, sub_zh, sub_en = render(Step.PERSON_CHANGED, {"registration_id": "R1", "substitution": "true"})
    assert "更换" in sub_zh and "another person" in sub_en.lower()
    assert "更换" not in changed_zh and "another person" not in changed_en.lower()
    _, zh, en = render(
        Step.CERTIFICATE_REACTIVATED, {"registration_id": "R1", "certificate_no": "B05-0000042"}
    )
    assert "B05-0000042" in zh and "B05-0000042" in en
    assert "不再制作或寄送" in zh and "no new card is made or sent" in en.lower()


def test_gateway_signatures_refuse_forged_and_stale_messages() -> None:
    now = datetime.now(UTC)
    body = b'{"order_no": "P1", "amount_fen": 20000}'
    headers = signing.sign("key", body, now)
    signing.verify("key", headers, body, now + timedelta(seconds=30))
    for key, message, when, code in [
        ("other-key", body, now, "bad_signature"),
        ("key", body.replace(b"20000", b"1"), now, "bad_signature"),
        ("key", body, now + timedelta(minutes=10), "stale"),
    ]:
        with pytest.raises(signing.SignatureError) as refused:
            signing.verify(key, headers, message, when)
        assert refused.value.code == code
    with pytest.raises(signing.SignatureError) as unsigned:
        signing.verify("key", {}, body, now)
    assert unsigned.value.code == "unsigned"
