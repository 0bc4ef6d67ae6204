"""The pages in a real browser (Debian's Chromium, driven by Playwright) against the whole running stack:
a unit's account walks from sign-up to delivered certificates, paying one person by QR code and the
other by bank transfer, which finance confirms on its pages; a staff member passes the unit review and
then both people in one bulk decision. Another buyer logs in and corrects a refused unit form with the
keyboard alone. Every page visited is kept as a screenshot under
var/test-artifacts/screenshots/<test>/ and audited by axe-core for WCAG 2.x A and AA (tests/browser.py):
a violation anywhere fails the test, listed, and stays in accessibility.json beside the screenshots.

The QR payment is the one step no page can take: the buyer's phone scans the QR code shown on the order
page; the test does what the phone does (opens the code's payload at the sandbox gateway)."""

from __future__ import annotations

import io
import re
import secrets
import time
from collections.abc import Callable

import httpx
from PIL import Image, ImageDraw
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


def tab_to(page: Page, selector: str, presses: int = 40) -> None:
    """Press Tab until ``selector`` has the focus, as a keyboard user does, and check that every stop on
    the way shows where the focus is (the site's focus ring: an outline drawn by ``:focus-visible``)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        stop = page.evaluate(FOCUS_RING)
        assert stop["ring"], f"no visible focus on {stop['element']} ({page.url})"
        if page.evaluate("selector => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{selector} not reached in {presses} presses of Tab on {page.url}")


# The focused element, and whether it shows the focus: keyboard focus (:focus-visible) drawn with an
# outline at least 2 px wide.
FOCUS_RING = """() => {
  const element = document.activeElement, style = getComputedStyle(element);
  return {
    element: element.outerHTML.slice(0, 120),
    ring: element.matches(":focus-visible") && style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
  };
}"""


def registration_ids(buyer: Page) -> list[str]:
    links = buyer.locator("a[id^='details-']")
    return [str(links.nth(i).get_attribute("id")).removeprefix("details-") for i in range(links.count())]


def staff_login(browser: Browser, site: str, login: str, password: str) -> Page:
    """A staff member opens a staff site (``/console``, ``/finance``) and is sent to its login first."""
    staff = browser.user("zh-CN")
    staff.goto(site)
    expect(staff).to_have_url(re.compile(r"/login"))
    staff.locator("#login-form input[name='login']").fill(login)
    staff.locator("#login-form input[name='password']").fill(password)
    browser.shot(staff, f"login at {site.rsplit('/', 1)[-1]}")
    staff.locator("#login-submit").click()
    expect(staff).to_have_url(re.compile(rf"{re.escape(site)}/?$"))
    return staff


def finance_account(stack: Stack) -> tuple[str, str]:
    """A finance staff account for every mission, opened by the administrator through the staff API as
    the organiser's administrator does; its login and password."""
    review, settings = stack.url("review"), stack.settings
    admin = httpx.post(
        f"{review}/v1/staff/sessions",
        json={"login": settings.admin_login, "password": settings.admin_password.get_secret_value()},
        timeout=10,
    )
    admin.raise_for_status()
    login, password = (
        f"finance-{secrets.token_hex(4)}@expo.example",
        f"Ledger-{secrets.token_urlsafe(10)}-2023",
    )
    httpx.post(
        f"{review}/v1/staff",
        json={
            "login": login,
            "name": "李娜",
            "role": "finance",
            "password": password,
            "reason": "财务处新同事",
        },
        headers={"Authorization": f"Bearer {admin.json()['token']}"},
        timeout=10,
    ).raise_for_status()
    return login, password


def voucher_jpeg(order_no: str) -> bytes:
    """A scanned bank remittance slip naming the order (as the bank's counter stamps it)."""
    image = Image.new("RGB", (800, 500), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, 780, 480), outline=(180, 30, 30), width=4)
    for line, text in enumerate(
        ["REMITTANCE VOUCHER", f"Order {order_no}", "Amount as ordered", "Bank stamp"]
    ):
        draw.text((60, 60 + 90 * line), text, fill=(20, 20, 20), font_size=40)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def pay(browser: Browser, buyer: Page, portal: str, rid: str, method: str) -> str:
    """The buyer pays for one person by ``method``: the order's number."""
    buyer.goto(f"{portal}/pay")
    boxes = buyer.locator("input[name='registration_ids']")  # every unpaid person comes ticked
    for box in boxes.all():
        box.set_checked(box.get_attribute("value") == rid)
    buyer.locator(field(buyer, f"method-{method}")).check()
    browser.shot(buyer, f"payment form by {method}")
    buyer.locator("#pay-submit").click()
    expect(buyer).to_have_url(re.compile(r"/portal/orders/\w+$"))
    return buyer.url.rsplit("/", 1)[-1]


def confirm_transfer(browser: Browser, finance: Page, order_no: str) -> None:
    """Finance finds the transfer, looks at its voucher, and confirms it with the bank's reference."""
    transfer = finance.locator(f"#transfer-{order_no}")
    until(lambda: transfer.count() == 1, "the transfer awaiting confirmation", finance)
    browser.shot(finance, "transfers awaiting confirmation")
    with finance.expect_popup() as opened:
        finance.locator(f"#voucher-{order_no}").click()
    voucher = opened.value
    voucher.wait_for_load_state()
    expect(voucher.locator("img")).to_be_visible()  # the JPEG the buyer uploaded, as the browser shows it
    browser.shot(voucher, "the voucher", audit=False)  # the browser's own image page, not one of ours
    voucher.close()
    # Confirmed without the bank's reference: refused, the message beside the reference's input.
    finance.once("dialog", lambda dialog: dialog.accept())  # "Confirm this transfer has arrived?"
    finance.locator(f"#confirm-{order_no}").click()
    expect(finance.locator(f'[id="f-{order_no}-bank_reference-error"]')).not_to_be_empty()
    reference = finance.locator(f'[id="f-{order_no}-bank_reference"]')
    expect(reference).to_have_attribute("aria-invalid", "true")
    browser.shot(finance, "transfer refused without the bank reference")
    reference.fill(f"ICBC{secrets.randbelow(10**12):012d}")
    finance.once("dialog", lambda dialog: dialog.accept())
    finance.locator(f"#confirm-{order_no}").click()
    expect(finance.get_by_role("status")).to_contain_text(order_no)
    browser.shot(finance, "transfer confirmed")


def test_a_unit_pays_by_qr_code_and_by_transfer_and_reaches_delivered_certificates(
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
    settings = stack.settings
    console = f"{stack.url('review')}/console"
    staff = staff_login(browser, console, settings.admin_login, settings.admin_password.get_secret_value())
    expect(staff.locator("#queue-title")).to_be_visible()
    staff.goto(f"{console}/units/{unit_id}")
    until(lambda: staff.locator("#decision-form").count() == 1, "the unit in the review queue", staff)
    browser.shot(staff, "unit detail before the decision")
    staff.locator("#decide-approve").click()
    expect(staff.get_by_role("status")).to_be_visible()
    browser.shot(staff, "unit approved")

    # The buyer sees the payment notice and pays the first person by QR code.
    buyer.goto(portal)
    until(lambda: buyer.locator("#pay-now").count() == 1, "both people unpaid", buyer)
    pay(browser, buyer, portal, ids[0], "qr")
    expect(buyer.locator("#qr-code svg")).to_be_visible()
    browser.shot(buyer, "order with its QR code")
    payload = buyer.locator("#qr-code figcaption").inner_text().strip()
    httpx.post(payload, timeout=10).raise_for_status()  # the buyer's phone scans the code and pays
    until(lambda: "已支付" in buyer.locator("#order-status").inner_text(), "the order paid", buyer)
    browser.shot(buyer, "order paid")

    # The second by bank transfer: the voucher is uploaded on the order page, and finance confirms it.
    order_no = pay(browser, buyer, portal, ids[1], "transfer")
    buyer.locator(field(buyer, "voucher")).set_input_files(
        {"name": "voucher.jpg", "mimeType": "image/jpeg", "buffer": voucher_jpeg(order_no)}
    )
    browser.shot(buyer, "order with the transfer voucher chosen")
    buyer.locator("#voucher-submit").click()
    expect(buyer.locator("#order-next")).to_contain_text("等待财务确认")
    browser.shot(buyer, "transfer awaiting confirmation")
    finance = staff_login(browser, f"{stack.url('payment')}/finance", *finance_account(stack))
    confirm_transfer(browser, finance, order_no)
    finance.locator("#nav-orders").click()
    expect(finance.locator("#view-apply")).to_be_visible()
    browser.shot(finance, "finance orders to check")
    finance.locator("#nav-refunds").click()
    expect(finance.locator("#refund-apply")).to_be_visible()
    browser.shot(finance, "finance refunds")
    finance.goto(f"{stack.url('payment')}/finance/orders/{order_no}")
    expect(finance.locator("#order-received")).to_have_text(finance.locator("#order-amount").inner_text())
    browser.shot(finance, "finance ledger of the transfer")
    buyer.goto(f"{portal}/registrations/{ids[1]}")
    until(
        lambda: buyer.locator("#status").inner_text() == "待审核",
        "the transfer's person to be reviewed",
        buyer,
    )
    browser.shot(buyer, "registration paid by transfer, to be reviewed")

    # Staff pass both people in one bulk decision.
    staff.goto(f"{console}?kind=person")
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
    staff.goto(f"{console}/registrations/{ids[0]}")
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
    browser.assert_accessible()


def test_a_buyer_logs_in_and_corrects_a_refused_unit_form_with_the_keyboard_alone(
    stack: Stack, browser: Browser
) -> None:
    portal = f"{stack.url('registration')}/portal"
    email, password = (
        f"keys-{secrets.token_hex(4)}@pudong-trade.example",
        f"Keys-{secrets.token_urlsafe(10)}-2023",
    )
    httpx.post(
        f"{stack.url('registration')}/v1/accounts",
        json={"kind": "unit", "email": email, "mobile": "13812345678", "password": password},
        timeout=10,
    ).raise_for_status()
    buyer = browser.user("zh-CN")
    buyer.goto(f"{portal}/login")
    # The first stop is the skip link, which shows itself once focused.
    tab_to(buyer, ".skip", presses=1)
    skip = buyer.locator(".skip").bounding_box()
    assert skip is not None and skip["x"] >= 0 and skip["y"] >= 0, "the focused skip link is off screen"
    tab_to(buyer, field(buyer, "login"))
    buyer.keyboard.type(email)
    tab_to(buyer, field(buyer, "password"))
    buyer.keyboard.type(password)
    buyer.keyboard.press("Enter")
    expect(buyer.locator("#no-unit")).to_be_visible()
    tab_to(buyer, "#register-unit")
    browser.shot(buyer, "keyboard focus on register the unit")
    buyer.keyboard.press("Enter")
    expect(buyer).to_have_url(re.compile(r"/portal/unit$"))

    # The unit form: the kind is already "enterprise" (the first); the affiliation's first radio is
    # "residence", ticked with Space, which shows the credit code.
    tab_to(buyer, field(buyer, "name"))
    buyer.keyboard.type("上海浦东键盘贸易有限公司")
    tab_to(buyer, "input[name='mission.affiliation']")
    buyer.keyboard.press("Space")
    expect(buyer.locator(field(buyer, "mission.affiliation-residence"))).to_be_checked()
    good = demo_credit_code()
    for name, text in [
        ("credit_code", good[:-1] + ("0" if good[-1] != "0" else "1")),  # a wrong check digit
        ("address", "上海市浦东新区张杨路500号"),
        ("industry", "批发和零售业"),
        ("contact.name", "陈静"),
        ("contact.mobile", "13812345678"),
        ("contact.email", "chen.jing@pudong-trade.example"),
    ]:
        tab_to(buyer, field(buyer, name))
        buyer.keyboard.type(text)
    tab_to(buyer, "#unit-submit")
    buyer.keyboard.press("Enter")

    # Refused: the error summary has the focus; its link takes the focus to the credit code.
    summary = buyer.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_attribute("href", "#f-credit_code")
    tab_to(buyer, "#error-summary a", presses=1)
    buyer.keyboard.press("Enter")
    credit_code = buyer.locator(field(buyer, "credit_code"))
    expect(credit_code).to_be_focused()
    expect(credit_code).to_have_attribute("aria-invalid", "true")
    browser.shot(buyer, "keyboard focus on the refused credit code")
    buyer.keyboard.press("Control+A")
    buyer.keyboard.type(good)
    buyer.keyboard.press("Enter")
    expect(buyer.locator("#unit-id")).to_be_visible()
    browser.shot(buyer, "unit registered by keyboard")
    browser.assert_accessible()
