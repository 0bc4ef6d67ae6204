"""The pages in a real browser (Debian's Chromium, driven by Playwright) against the whole running stack:
a unit's account walks from sign-up to delivered certificates, and a staff member passes the unit
review and then both people in one bulk decision. Every page visited is kept as a screenshot under
var/test-artifacts/screenshots/<test>/.

The payment is the one step no page can take: the buyer's phone scans the QR code shown on the order
page; the test does what the phone does (opens the code's payload at the sandbox gateway)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from deploy.local.demo import demo_credit_code, demo_id_number, demo_photo
from deploy.local.stack import Stack
from tests.browser import Browser

PEOPLE = [
    ("王磊", "19860415", "13911112222", "wang.lei"),
    ("赵敏", "19920630", "13933334444", "zhao.min"),
]


def field(page: Page, name: str) -> str:
    """The input named ``name`` (API field paths contain dots, which CSS ids cannot take plainly)."""
    return f'[id="f-{name}"]'


def until(condition: Callable[[], bool], what: str, page: Page, timeout: float = 60) -> None:
    """Reload ``page`` until ``condition`` holds, as a person waiting for a status would."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)
        page.reload()


def sign_up(browser: Browser, portal: str) -> Page:
    buyer = browser.user("zh-CN")
    buyer.goto(f"{portal}/signup")
    expect(buyer.get_by_role("heading", level=1)).to_have_text("注册账户")
    buyer.get_by_label("单位账户（为单位及其人员报名）").check()
    buyer.get_by_label("电子邮箱（用于登录）").fill(f"buyer-{secrets.token_hex(4)}@pudong-trade.example")
    buyer.get_by_label("手机号码").fill("13812340000")
    password = f"Expo-{secrets.token_urlsafe(10)}-2023"
    buyer.locator(field(buyer, "password")).fill(password)
    buyer.get_by_label("再次输入密码").fill(password)
    browser.shot(buyer, "buyer sign-up")
    buyer.locator("#signup-submit").click()
    expect(buyer.locator("#no-unit")).to_be_visible()
    browser.shot(buyer, "buyer home without a unit")
    return buyer


def register_unit(browser: Browser, buyer: Page) -> str:
    buyer.locator("#register-unit").click()
    buyer.locator(field(buyer, "kind")).select_option("enterprise")
    buyer.get_by_label("单位名称").fill("上海浦东国际采购有限公司")
    buyer.locator(field(buyer, "mission.affiliation-residence")).check()
    credit_code = buyer.locator(field(buyer, "credit_code"))
    good = demo_credit_code()
    credit_code.fill(good[:-1] + ("0" if good[-1] != "0" else "1"))  # a wrong check digit
    buyer.get_by_label("单位地址").fill("上海市浦东新区张杨路500号")
    buyer.get_by_label("所属行业").fill("批发和零售业")
    buyer.locator(field(buyer, "contact.name")).fill("陈静")
    buyer.locator(field(buyer, "contact.mobile")).fill("13812340000")
    buyer.locator(field(buyer, "contact.email")).fill("chen.jing@pudong-trade.example")
    buyer.locator("#unit-submit").click()
    # The refusal stands next to the credit code, and nothing typed is lost.
    expect(buyer.locator(field(buyer, "credit_code-error"))).not_to_be_empty()
    expect(buyer.get_by_label("单位名称")).to_have_value("上海浦东国际采购有限公司")
    browser.shot(buyer, "unit form with a refused credit code")
    credit_code.fill(good)
    buyer.locator("#unit-submit").click()
    expect(buyer.locator("#unit-id")).to_be_visible()
    browser.shot(buyer, "buyer home with the unit under review")
    return buyer.locator("#unit-id").inner_text().strip()


def add_person(browser: Browser, buyer: Page, name: str, birth: str, mobile: str, mailbox: str) -> None:
    buyer.get_by_role("link", name="添加人员").first.click()
    buyer.get_by_label("姓名（与证件一致）").fill(name)
    buyer.locator(field(buyer, "id_type")).select_option("resident_id")
    buyer.get_by_label("证件号码").fill(demo_id_number(birth))
    buyer.locator(field(buyer, "mobile")).fill(mobile)
    buyer.locator(field(buyer, "email")).fill(f"{mailbox}@pudong-trade.example")
    buyer.get_by_label("职务").fill("采购经理")
    buyer.locator(field(buyer, "entrance_date")).select_option(index=0)
    buyer.locator(field(buyer, "delivery_method-express")).check()
    buyer.locator(field(buyer, "delivery_address.recipient")).fill(name)
    buyer.locator(field(buyer, "delivery_address.mobile")).fill(mobile)
    buyer.locator(field(buyer, "delivery_address.province")).select_option("上海市")
    buyer.locator(field(buyer, "delivery_address.city")).fill("上海市")
    buyer.locator(field(buyer, "delivery_address.district")).fill("浦东新区")
    buyer.locator(field(buyer, "delivery_address.detail")).fill("张杨路500号10楼")
    buyer.locator(field(buyer, "delivery_address.postal_code")).fill("200122")
    buyer.locator(field(buyer, "delivery_address.valid_for_six_months")).check()
    buyer.locator(field(buyer, "photo")).set_input_files(
        {"name": f"{mailbox}.jpg", "mimeType": "image/jpeg", "buffer": demo_photo(name)}
    )
    browser.shot(buyer, f"person form {mailbox}")
    buyer.locator("#person-submit").click()
    # The person's own page: registered, photo uploaded, waiting for the unit review.
    expect(buyer.get_by_role("status")).to_contain_text("照片已上传")
    expect(buyer.get_by_role("heading", level=1)).to_have_text(name)
    browser.shot(buyer, f"person {mailbox} registered")


def registration_ids(buyer: Page) -> list[str]:
    links = buyer.locator("a[id^='details-']")
    return [str(links.nth(i).get_attribute("id")).removeprefix("details-") for i in range(links.count())]


def staff_login(browser: Browser, stack: Stack) -> Page:
    staff = browser.user("zh-CN")
    staff.goto(f"{stack.url('review')}/console")
    expect(staff).to_have_url(re.compile(r"/console/login"))
    settings = stack.settings
    staff.locator("#login-form input[name='login']").fill(settings.admin_login)
    staff.locator("#login-form input[name='password']").fill(settings.admin_password.get_secret_value())
    browser.shot(staff, "staff login")
    staff.locator("#login-submit").click()
    expect(staff.locator("#queue-title")).to_be_visible()
    return staff


def test_a_buyer_reaches_delivered_certificates_and_staff_pass_both_reviews_in_bulk(
    stack: Stack, browser: Browser
) -> None:
    portal = f"{stack.url('registration')}/portal"
    buyer = sign_up(browser, portal)
    unit_id = register_unit(browser, buyer)
    for person in PEOPLE:
        add_person(browser, buyer, *person)
    buyer.goto(portal)
    ids = registration_ids(buyer)
    assert len(ids) == 2
    browser.shot(buyer, "buyer home with two people")

    # The mission's staff pass the unit.
    staff = staff_login(browser, stack)
    staff.goto(f"{stack.url('review')}/console/units/{unit_id}")
    until(lambda: staff.locator("#decision-form").count() == 1, "the unit in the review queue", staff)
    browser.shot(staff, "unit detail before the decision")
    staff.locator("#decide-approve").click()
    expect(staff.get_by_role("status")).to_be_visible()
    browser.shot(staff, "unit approved")

    # The buyer sees the payment notice and pays both people by QR code.
    buyer.goto(portal)
    until(lambda: buyer.locator("#pay-now").count() == 1, "both people unpaid", buyer)
    buyer.locator("#pay-now").click()
    for rid in ids:
        buyer.locator(f"#pay-{rid}").check()
    buyer.locator(field(buyer, "method-qr")).check()
    browser.shot(buyer, "payment form")
    buyer.locator("#pay-submit").click()
    expect(buyer.locator("#qr-code svg")).to_be_visible()
    browser.shot(buyer, "order with its QR code")
    payload = buyer.locator("#qr-code figcaption").inner_text().strip()
    httpx.post(payload, timeout=10).raise_for_status()  # the buyer's phone scans the code and pays
    until(lambda: "已支付" in buyer.locator("#order-status").inner_text(), "the order paid", buyer)
    browser.shot(buyer, "order paid")

    # Staff pass both people in one bulk decision.
    staff.goto(f"{stack.url('review')}/console?kind=person")
    until(
        lambda: all(staff.locator(f"#select-{rid}").count() == 1 for rid in ids), "both in the queue", staff
    )
    for rid in ids:
        staff.locator(f"#select-{rid}").check()
    browser.shot(staff, "person queue with both ticked")
    staff.once("dialog", lambda dialog: dialog.accept())  # "Approve every ticked row?"
    staff.locator("#bulk-approve").click()
    expect(staff.locator("#bulk-summary")).to_contain_text("成功 2 项")
    browser.shot(staff, "bulk decision results")
    staff.goto(f"{stack.url('review')}/console/registrations/{ids[0]}")
    temporal = staff.locator("#temporal-link")
    expect(temporal).to_have_attribute("href", re.compile(rf"/workflows/registration-\w+-{ids[0]}$"))
    browser.shot(staff, "person detail with the workflow link")

    # The buyer follows each card to its delivery.
    for rid in ids:
        buyer.goto(f"{portal}/registrations/{rid}")
        until(lambda: buyer.locator("#status").inner_text() == "已送达", f"{rid} delivered", buyer, 90)
        expect(buyer.locator("#tracking-no")).not_to_be_empty()
        expect(buyer.locator("#tracking li")).not_to_have_count(0)
        browser.shot(buyer, f"registration {rid} delivered with tracking")
    buyer.goto(f"{portal}/registrations/{ids[0]}?lang=en")
    expect(buyer.locator("#status")).to_have_text("Delivered")
    browser.shot(buyer, "registration in English")
