"""The buyer's badge: a one-page A6 PDF with photo, holder details and the admission QR.

Layout (A6 portrait, 105 × 148 mm)::

    ┌───────────────────────────────┐
    │  edition name (zh / en)       │  blue header
    ├───────────────────────────────┤
    │  证件类型  Certificate type    │  red band
    ├────────┬──────────────────────┤
    │ photo  │ holder name          │
    │ 33×44  │ unit                 │
    │        │ trade mission / sub  │
    ├────────┴─────────┬────────────┤
    │ certificate no.  │   QR code  │  36 mm, error correction M
    │ scan hint  →     │            │
    └──────────────────┴────────────┘

Chinese text uses reportlab's built-in CID font ``STSong-Light`` (not embedded:
the viewer/printer supplies an Adobe-GB1 font), lines that are Latin-only use
Helvetica.  The PDF is written with reportlab's *invariant* mode, so the same
``BadgeData`` always gives byte-identical output.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass

import pydantic
import segno
from PIL import Image, ImageOps
from reportlab.lib.colors import Color, HexColor, white
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

__all__ = ["BADGE_HEIGHT", "BADGE_WIDTH", "QR_SIZE", "BadgeData", "render_badge"]

BADGE_WIDTH = 105 * mm
BADGE_HEIGHT = 148 * mm
QR_SIZE = 36 * mm
"""Side of the QR symbol itself (quiet zone not included)."""

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"
LATIN_BOLD_FONT = "Helvetica-Bold"

_BLUE = HexColor("#0B3D91")
_RED = HexColor("#C8102E")
_INK = HexColor("#1A1A1A")
_GREY = HexColor("#6B6B6B")
_LIGHT = HexColor("#F1F2F4")
_RULE = HexColor("#C9CCD2")

_MARGIN = 8 * mm
_PHOTO_W = 33 * mm
_PHOTO_H = 44 * mm
_PHOTO_MAX_PIXELS = 40_000_000  # refuse decompression bombs long before PIL's own limit
_PHOTO_EMBED_PX = (600, 800)  # ≈ 460 dpi in the 33 × 44 mm box

_NO_LINE_START = frozenset("，。、；：？！）》」』】〕〉”’,.;:?!)]}%·…")
_NO_LINE_END = frozenset("（《「『【〔〈“‘([{")
_ELLIPSIS = "…"


class BadgeData(pydantic.BaseModel):
    """Everything printed on a badge."""

    edition_name_zh: str
    edition_name_en: str
    certificate_no: str = pydantic.Field(min_length=1)
    certificate_type_zh: str
    certificate_type_en: str
    holder_name: str = pydantic.Field(min_length=1)
    unit_name: str
    mission_name_zh: str
    mission_name_en: str
    sub_mission_name_zh: str | None = None
    sub_mission_name_en: str | None = None
    admission_code: str = pydantic.Field(min_length=1)
    """The organiser-signed code (see ``admission_code.AdmissionSigner.sign``) encoded in the QR."""
    photo: bytes | None = None
    """JPEG or PNG as uploaded by the buyer; ``None`` prints a placeholder box."""


@functools.cache
def _register_fonts() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


# --------------------------------------------------------------------------- text


@functools.lru_cache(maxsize=4096)
def _is_latin(ch: str) -> bool:
    """True if Helvetica (WinAnsi encoding) can show the character."""
    try:
        ch.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _runs(text: str, bold: bool) -> list[tuple[str, str]]:
    """Split ``text`` into (segment, font) runs: Helvetica where WinAnsi covers it, else STSong-Light."""
    latin = LATIN_BOLD_FONT if bold else LATIN_FONT
    runs: list[tuple[str, str]] = []
    for ch in text:
        font = latin if _is_latin(ch) else CJK_FONT
        if runs and runs[-1][1] == font:
            runs[-1] = (runs[-1][0] + ch, font)
        else:
            runs.append((ch, font))
    return runs


def _width(text: str, size: float, bold: bool = False) -> float:
    return sum(pdfmetrics.stringWidth(seg, font, size) for seg, font in _runs(text, bold))


def _is_wide(ch: str) -> bool:
    """CJK ideographs, kana, hangul, fullwidth forms and CJK punctuation: a line may break around them."""
    return ord(ch) >= 0x2E80


def _tokens(text: str) -> list[str]:
    """Split into unbreakable pieces: Latin words, single wide characters (with their punctuation), spaces."""
    tokens: list[str] = []
    word = ""
    pending_open = ""

    def push(tok: str) -> None:
        nonlocal pending_open
        tokens.append(pending_open + tok)
        pending_open = ""

    for ch in " ".join(text.split()):
        if ch == " ":
            if word:
                push(word)
                word = ""
            if pending_open:
                push("")
            tokens.append(" ")
        elif ch in _NO_LINE_START and not word and tokens and tokens[-1] != " ":
            tokens[-1] += ch
        elif ch in _NO_LINE_END and _is_wide(ch):
            if word:
                push(word)
                word = ""
            pending_open += ch
        elif _is_wide(ch):
            if word:
                push(word)
                word = ""
            push(ch)
        else:
            word += ch
    if word or pending_open:
        push(word)
    return [t for t in tokens if t]


def _wrap(text: str, size: float, bold: bool, width: float) -> list[str]:
    def fits(s: str) -> bool:
        return _width(s, size, bold) <= width

    lines: list[str] = []
    current = ""
    for tok in _tokens(text):
        if tok == " ":
            if current:
                current += " "
            continue
        if fits(current + tok):
            current += tok
            continue
        if current.strip():
            lines.append(current.rstrip())
        current = ""
        while not fits(tok) and len(tok) > 1:  # a single word wider than the line: hard break
            cut = max((i for i in range(1, len(tok)) if fits(tok[:i])), default=1)
            lines.append(tok[:cut])
            tok = tok[cut:]
        current = tok
    if current.strip():
        lines.append(current.rstrip())
    return lines


@dataclass(frozen=True)
class _Fitted:
    lines: list[str]
    size: float
    bold: bool
    leading: float

    @property
    def height(self) -> float:
        return len(self.lines) * self.leading


def _fit(
    text: str,
    width: float,
    *,
    size: float,
    min_size: float,
    max_lines: int,
    bold: bool = False,
    leading: float = 1.22,
) -> _Fitted:
    """Wrap ``text`` into at most ``max_lines`` lines of ``width``, shrinking the font down to ``min_size``,
    then cutting the last line with an ellipsis if it still does not fit."""
    current = max(size, min_size)
    while True:
        lines = _wrap(text, current, bold, width)
        if len(lines) <= max_lines or current <= min_size:
            break
        current = max(min_size, current - 0.5)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and _width(last + _ELLIPSIS, current, bold) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + _ELLIPSIS
    return _Fitted(lines=lines, size=current, bold=bold, leading=current * leading)


def _draw_line(
    c: Canvas,
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    color: Color = _INK,
    bold: bool = False,
    align: str = "left",
) -> float:
    """Draw one line (font per run, see ``_runs``) and return its width.

    ``bold`` uses Helvetica-Bold for Latin runs and fill+stroke rendering for the CID font, which has no bold.
    """
    runs = _runs(text, bold)
    width = sum(pdfmetrics.stringWidth(seg, font, size) for seg, font in runs)
    if align == "center":
        x -= width / 2
    elif align == "right":
        x -= width
    c.setFillColor(color)
    c.setStrokeColor(color)
    c.setLineWidth(size * 0.035)
    t = c.beginText(x, y)
    for seg, font in runs:
        t.setFont(font, size)
        t.setTextRenderMode(2 if bold and font == CJK_FONT else 0)
        t.textOut(seg)
    t.setTextRenderMode(0)
    c.drawText(t)
    return width


def _draw_block(
    c: Canvas, x: float, top: float, block: _Fitted, *, color: Color = _INK, align: str = "left"
) -> float:
    """Draw fitted lines with their first baseline just below ``top``; return the y below the block."""
    y = top
    for line in block.lines:
        y -= block.leading
        _draw_line(
            c, x, y + block.leading * 0.22, line, block.size, color=color, bold=block.bold, align=align
        )
    return y


def _draw_pair(
    c: Canvas,
    center_x: float,
    baseline: float,
    zh: str,
    en: str,
    *,
    width: float,
    zh_size: float,
    en_size: float,
    color: Color,
) -> None:
    """``zh`` and ``en`` side by side on one centred line, shrunk together if too wide."""
    gap = 3 * mm if zh and en else 0
    while True:
        zw, ew = _width(zh, zh_size, True), _width(en, en_size, True)
        if zw + gap + ew <= width or en_size <= 5:
            break
        zh_size *= 0.95
        en_size *= 0.95
    x = center_x - (zw + gap + ew) / 2
    _draw_line(c, x, baseline, zh, zh_size, color=color, bold=True)
    _draw_line(c, x + zw + gap, baseline, en, en_size, color=color, bold=True)


def _draw_arrow(c: Canvas, x: float, y: float, length: float, color: Color) -> None:
    """A right-pointing arrow from (x, y)."""
    head = 1.6 * mm
    c.setStrokeColor(color)
    c.setFillColor(color)
    c.setLineWidth(0.9)
    c.line(x, y, x + length - head, y)
    p = c.beginPath()
    p.moveTo(x + length, y)
    p.lineTo(x + length - head, y + head * 0.6)
    p.lineTo(x + length - head, y - head * 0.6)
    p.close()
    c.drawPath(p, stroke=0, fill=1)


# --------------------------------------------------------------------------- photo and QR


def _load_photo(photo: bytes) -> ImageReader:
    """Decode the upload (EXIF orientation applied, alpha flattened on white); re-encode as a compact JPEG."""
    try:
        with Image.open(io.BytesIO(photo)) as img:
            if img.width * img.height > _PHOTO_MAX_PIXELS:
                raise ValueError(f"photo is too large ({img.width}×{img.height} px)")
            img.draft("RGB", _PHOTO_EMBED_PX)  # JPEG: decode at a reduced scale when possible
            img.load()
            oriented = ImageOps.exif_transpose(img)
            if oriented.mode in ("RGBA", "LA", "PA") or (
                oriented.mode == "P" and "transparency" in oriented.info
            ):
                rgba = oriented.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
            else:
                flat = oriented.convert("RGB")
            flat.thumbnail(_PHOTO_EMBED_PX, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            flat.save(out, format="JPEG", quality=90, optimize=True)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError("photo is not a readable JPEG or PNG image") from exc
    out.seek(0)
    return ImageReader(out)


def _draw_photo(c: Canvas, x: float, y: float, photo: bytes | None) -> None:
    c.setFillColor(_LIGHT)
    c.rect(x, y, _PHOTO_W, _PHOTO_H, stroke=0, fill=1)
    if photo is None:
        c.setStrokeColor(_RULE)
        c.setLineWidth(0.8)
        c.setDash(3, 2)
        c.rect(x, y, _PHOTO_W, _PHOTO_H, stroke=1, fill=0)
        c.setDash()
        cx, cy = x + _PHOTO_W / 2, y + _PHOTO_H / 2
        _draw_line(c, cx, cy + 1 * mm, "照片", 12, color=_GREY, align="center")
        _draw_line(c, cx, cy - 4 * mm, "Photo", 8, color=_GREY, align="center")
        return
    image = _load_photo(photo)
    iw, ih = image.getSize()
    scale = min(_PHOTO_W / iw, _PHOTO_H / ih)
    dw, dh = iw * scale, ih * scale
    c.drawImage(image, x + (_PHOTO_W - dw) / 2, y + (_PHOTO_H - dh) / 2, width=dw, height=dh)
    c.setStrokeColor(_RULE)
    c.setLineWidth(0.5)
    c.rect(x, y, _PHOTO_W, _PHOTO_H, stroke=1, fill=0)


def _draw_qr(c: Canvas, x: float, y: float, size: float, code: str) -> None:
    """The QR (error correction M) as one vector path of dark runs; a 4-module white quiet zone around it."""
    qr = segno.make(code, error="m", boost_error=False, micro=False)
    matrix: Sequence[Sequence[int]] = qr.matrix
    n = len(matrix)
    module = size / n
    quiet = 4 * module
    c.setFillColor(white)
    c.rect(x - quiet, y - quiet, size + 2 * quiet, size + 2 * quiet, stroke=0, fill=1)
    path = c.beginPath()
    for r, row in enumerate(matrix):
        col = 0
        while col < n:
            if not row[col]:
                col += 1
                continue
            start = col
            while col < n and row[col]:
                col += 1
            path.rect(x + start * module, y + size - (r + 1) * module, (col - start) * module, module)
    c.setFillColor(HexColor("#000000"))
    c.drawPath(path, stroke=0, fill=1)


# --------------------------------------------------------------------------- page


def _labelled_blocks(data: BadgeData, width: float, scale: float) -> list[tuple[str | None, list[_Fitted]]]:
    """The right-hand column: (label, value blocks) in reading order, at a given font scale."""

    def fit(text: str, size: float, min_size: float, max_lines: int, *, bold: bool = False) -> _Fitted:
        return _fit(text, width, size=size * scale, min_size=min_size, max_lines=max_lines, bold=bold)

    blocks: list[tuple[str | None, list[_Fitted]]] = [
        (None, [fit(data.holder_name, 16, 9, 2, bold=True)]),
        ("单位 Unit", [fit(data.unit_name, 9, 6, 3)]),
        (
            "交易团 Trade Mission",
            [fit(data.mission_name_zh, 9, 6, 2), fit(data.mission_name_en, 7.5, 5.5, 2)],
        ),
    ]
    if data.sub_mission_name_zh or data.sub_mission_name_en:
        sub = [
            fit(t, s, m, 2)
            for t, s, m in ((data.sub_mission_name_zh, 9, 6), (data.sub_mission_name_en, 7.5, 5.5))
            if t
        ]
        blocks.append(("交易分团 Sub-mission", sub))
    return blocks


def _draw_details(c: Canvas, data: BadgeData, x: float, top: float, bottom: float, width: float) -> None:
    label_size, label_gap, block_gap = 6.0, 0.6 * mm, 2.4 * mm
    scale = 1.0
    while True:
        blocks = _labelled_blocks(data, width, scale)
        height = sum(
            (label_size * 1.3 + label_gap if label else 0) + sum(f.height for f in fitted) + block_gap
            for label, fitted in blocks
        )
        if top - height >= bottom or scale <= 0.6:
            break
        scale -= 0.05
    y = top
    for label, fitted in blocks:
        if label:
            y -= label_size * 1.3
            _draw_line(c, x, y + label_size * 0.25, label, label_size, color=_GREY)
            y -= label_gap
        for block in fitted:
            y = _draw_block(c, x, y, block)
        y -= block_gap


def render_badge(data: BadgeData) -> bytes:
    """Render ``data`` as a one-page A6 PDF and return its bytes."""
    _register_fonts()
    out = io.BytesIO()
    c = Canvas(out, pagesize=(BADGE_WIDTH, BADGE_HEIGHT), invariant=True, pageCompression=1)
    c.setTitle(f"{data.certificate_type_en} {data.certificate_no}")
    c.setAuthor(data.edition_name_en)
    c.setSubject(f"Badge {data.certificate_no}")
    c.setCreator("expo-buyers certificate service")

    w, h = BADGE_WIDTH, BADGE_HEIGHT
    inner = w - 2 * _MARGIN

    # Header: edition name.
    c.setFillColor(_BLUE)
    c.rect(0, h - 24 * mm, w, 24 * mm, stroke=0, fill=1)
    zh = _fit(data.edition_name_zh, inner, size=13, min_size=8, max_lines=2, bold=True, leading=1.15)
    en = _fit(data.edition_name_en, inner, size=7.5, min_size=5, max_lines=2, leading=1.2)
    block_h = zh.height + 1 * mm + en.height
    top = h - 12 * mm + block_h / 2
    top = _draw_block(c, w / 2, top, zh, color=white, align="center") - 1 * mm
    _draw_block(c, w / 2, top, en, color=white, align="center")

    # Certificate type band.
    c.setFillColor(_RED)
    c.rect(0, h - 35 * mm, w, 11 * mm, stroke=0, fill=1)
    _draw_pair(
        c,
        w / 2,
        h - 31.5 * mm,
        data.certificate_type_zh,
        data.certificate_type_en,
        width=inner,
        zh_size=14,
        en_size=10,
        color=white,
    )

    # Photo and details.
    photo_top = h - 39 * mm
    _draw_photo(c, _MARGIN, photo_top - _PHOTO_H, data.photo)
    details_x = _MARGIN + _PHOTO_W + 5 * mm
    _draw_details(c, data, details_x, photo_top + 1 * mm, 57 * mm, w - _MARGIN - details_x)

    c.setStrokeColor(_RULE)
    c.setLineWidth(0.5)
    c.line(_MARGIN, 55 * mm, w - _MARGIN, 55 * mm)

    # QR with certificate number and scan hint.
    qr_x, qr_y = w - _MARGIN - QR_SIZE, 11.5 * mm
    _draw_qr(c, qr_x, qr_y, QR_SIZE, data.admission_code)
    left_w = qr_x - 3 * mm - _MARGIN
    _draw_line(c, _MARGIN, 48 * mm, "证件号 Certificate No.", 6, color=_GREY)
    number = _fit(data.certificate_no, left_w, size=12, min_size=7, max_lines=2, bold=True)
    _draw_block(c, _MARGIN, 47 * mm, number)
    hint_w = max(
        _draw_line(c, _MARGIN, 17 * mm, "入口闸机扫码", 8.5, color=_BLUE, bold=True),
        _draw_line(c, _MARGIN, 13 * mm, "Scan at the entrance gate", 7, color=_BLUE),
    )
    arrow_start = _MARGIN + hint_w + 2 * mm
    arrow_end = qr_x - 3 * mm
    if arrow_end - arrow_start > 4 * mm:
        _draw_arrow(c, arrow_start, 15.2 * mm, min(arrow_end - arrow_start, 10 * mm), _BLUE)

    # Footer strip.
    c.setFillColor(_BLUE)
    c.rect(0, 0, w, 5 * mm, stroke=0, fill=1)

    c.showPage()
    c.save()
    return out.getvalue()
