"""An electronic VAT invoice as a one-page A4 PDF: bilingual labels, the organiser as seller, the unit
as buyer (with its taxpayer data), one line per person with the fee kind, amounts in yuan. A
red-letter invoice is marked 红字 / REVERSAL and names the invoice it reverses.

Chinese text uses reportlab's CID font ``STSong-Light`` (as the badge does), Latin-only text
Helvetica; invariant mode makes the same invoice always give the same bytes, so a PDF can be
rendered again if its stored copy is missing."""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING

from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from services.payment.models import InvoiceKind

if TYPE_CHECKING:
    from services.payment.models import Invoice

__all__ = ["SELLER_EN", "SELLER_ZH", "render_invoice", "yuan"]

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"
SELLER_ZH = "中国国际进口博览局"
SELLER_EN = "China International Import Expo Bureau"

_INK = HexColor("#1A1A1A")
_RED = HexColor("#C8102E")
_BLUE = HexColor("#0B3D91")
_MARGIN = 18 * mm

FEE_KINDS = {
    "standard": ("证件费", "Certificate fee"),
    "revalidation": ("证件激活费", "Certificate revalidation fee"),
    "preferential_reissue": ("证件优惠补办费", "Preferential reissue fee"),
}


@functools.cache
def _register_fonts() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals: -12345 -> '-123.45' (integer arithmetic, no float)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}{whole:,}.{cents:02d}"


def _text(c: Canvas, x: float, y: float, text: str, size: float = 9, *, right: bool = False) -> None:
    font = LATIN_FONT if text.isascii() else CJK_FONT
    c.setFont(font, size)
    if right:
        c.drawRightString(x, y, text)
    else:
        c.drawString(x, y, text)


def render_invoice(invoice: Invoice, original: Invoice | None = None) -> bytes:
    """The invoice's PDF. ``original``: for a red-letter invoice, the invoice it reverses (its number
    is printed either way, from ``invoice.reverses``)."""
    _register_fonts()
    out = io.BytesIO()
    width, height = A4
    c = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    c.setTitle(f"Invoice {invoice.invoice_no}")
    red_letter = invoice.reverses is not None
    colour = _RED if red_letter else _BLUE
    c.setFillColor(colour)
    title_zh = "增值税电子专用发票" if invoice.kind is InvoiceKind.SPECIAL else "增值税电子普通发票"
    title_en = (
        "Electronic VAT Special Invoice"
        if invoice.kind is InvoiceKind.SPECIAL
        else "Electronic VAT Regular Invoice"
    )
    y = height - _MARGIN - 6 * mm
    _text(c, width / 2 - 60 * mm, y, f"{title_zh}{'（红字）' if red_letter else ''}", 16)
    y -= 7 * mm
    _text(c, width / 2 - 60 * mm, y, f"{title_en}{' - REVERSAL' if red_letter else ''}", 11)
    c.setFillColor(_INK)

    y -= 12 * mm
    _text(c, _MARGIN, y, "发票号码 Invoice No.:")
    _text(c, _MARGIN + 45 * mm, y, invoice.invoice_no, 10)
    _text(c, width - _MARGIN, y, f"{invoice.issued_at:%Y-%m-%d} UTC", 9, right=True)
    _text(c, width - _MARGIN - 45 * mm, y, "开票日期 Date:", right=True)
    y -= 6 * mm
    _text(c, _MARGIN, y, "订单号 Order No.:")
    _text(c, _MARGIN + 45 * mm, y, invoice.order_no, 10)
    if red_letter:
        y -= 6 * mm
        c.setFillColor(_RED)
        _text(c, _MARGIN, y, "红字发票 对应蓝字发票号码 Reverses invoice No.:")
        _text(c, _MARGIN + 80 * mm, y, invoice.reverses or "", 10)
        if original is not None:
            _text(c, _MARGIN + 125 * mm, y, f"({yuan(original.amount_fen)})", 9)
        c.setFillColor(_INK)

    y -= 12 * mm
    c.setStrokeColor(colour)
    c.line(_MARGIN, y + 4 * mm, width - _MARGIN, y + 4 * mm)
    _text(c, _MARGIN, y, "购买方 Buyer", 11)
    buyer = [
        ("名称 Name:", invoice.title),
        ("纳税人识别号 Taxpayer No.:", invoice.taxpayer_id),
    ]
    if invoice.kind is InvoiceKind.SPECIAL:
        buyer += [
            ("地址 Address:", invoice.address or ""),
            ("电话 Phone:", invoice.phone or ""),
            ("开户行 Bank:", invoice.bank_name or ""),
            ("账号 Account No.:", invoice.bank_account or ""),
        ]
    for label, value in buyer:
        y -= 6 * mm
        _text(c, _MARGIN + 4 * mm, y, label)
        _text(c, _MARGIN + 55 * mm, y, value, 10)
    y -= 10 * mm
    _text(c, _MARGIN, y, "销售方 Seller", 11)
    y -= 6 * mm
    _text(c, _MARGIN + 4 * mm, y, "名称 Name:")
    _text(c, _MARGIN + 55 * mm, y, SELLER_ZH, 10)
    y -= 5 * mm
    _text(c, _MARGIN + 55 * mm, y, SELLER_EN, 9)

    y -= 12 * mm
    c.line(_MARGIN, y + 4 * mm, width - _MARGIN, y + 4 * mm)
    _text(c, _MARGIN, y, "项目 Item")
    _text(c, _MARGIN + 85 * mm, y, "参会人 Registration")
    _text(c, width - _MARGIN, y, "金额（元） Amount (CNY)", right=True)
    for line in invoice.lines:
        y -= 6 * mm
        if y < _MARGIN + 30 * mm:  # a very large order: the rest are in the total
            _text(c, _MARGIN, y, "……")
            break
        zh, en = FEE_KINDS.get(str(line["fee_kind"]), (str(line["fee_kind"]), str(line["fee_kind"])))
        _text(c, _MARGIN, y, zh)
        _text(c, _MARGIN + 28 * mm, y, en)
        _text(c, _MARGIN + 85 * mm, y, str(line["registration_id"]))
        _text(c, width - _MARGIN, y, yuan(int(line["amount_fen"])), right=True)
    y -= 10 * mm
    c.line(_MARGIN, y + 4 * mm, width - _MARGIN, y + 4 * mm)
    _text(c, _MARGIN, y, "价税合计 Total:", 11)
    _text(c, width - _MARGIN, y, f"CNY {yuan(invoice.amount_fen)}", 11, right=True)
    c.showPage()
    c.save()
    return out.getvalue()
