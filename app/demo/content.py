"""What demo data is made of: people's names, sample files and their bytes.

Every file is small and made here (images with Pillow, PDFs with pypdf), so seeding needs no
fixtures on disk. Files that processing reads (images, PDFs) are real; a corrupt variant makes
processing fail for real. Videos carry only the right magic bytes (processing never decodes them).
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
from dataclasses import dataclass
from functools import lru_cache

from app.uploads.service import THUMBNAIL_SIZE

FIRST_NAMES = (
    "Ada", "Aiko", "Amara", "Ben", "Björn", "Carmen", "Chen", "Dmitri", "Elif", "Farah",
    "Gustavo", "Hana", "Inès", "Jonas", "Kwame", "Lena", "Mateo", "Mei", "Nia", "Olu",
    "Priya", "Quentin", "Rosa", "Sven", "Tomás", "Uma", "Viktor", "Wen", "Yara", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Bauer", "Costa", "Dubois", "Eriksen", "Fernández", "Gupta", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Müller", "Nakamura", "Novak", "O'Brien", "Okafor",
    "Petrov", "Quinn", "Rossi", "Schmidt", "Silva", "Tanaka", "Underwood", "Varga", "Wójcik",
    "Xu", "Yilmaz", "Zhang",
)  # fmt: skip


def email_local_part(first: str, last: str) -> str:
    """ "Zoë", "O'Brien" → "zoe.obrien": ASCII, lower case, letters and digits only."""

    def fold(name: str) -> str:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        return "".join(char for char in ascii_name.lower() if char.isalnum())

    return f"{fold(first)}.{fold(last)}"


@dataclass(frozen=True)
class SampleFile:
    kind: str
    filename: str
    content_type: str

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    @property
    def is_processed(self) -> bool:
        """Processing reads the bytes of images and PDFs (and can fail on them)."""
        return self.is_image or self.content_type == "application/pdf"


AVATARS = (
    SampleFile("avatar", "profile.png", "image/png"),
    SampleFile("avatar", "me.jpg", "image/jpeg"),
    SampleFile("avatar", "IMG_2041.JPG", "image/jpeg"),
    SampleFile("avatar", "headshot.png", "image/png"),
)
DOCUMENTS = (
    SampleFile("document", "Q3 budget.pdf", "application/pdf"),
    SampleFile("document", "onboarding checklist.pdf", "application/pdf"),
    SampleFile("document", "Projektplan Übersicht.pdf", "application/pdf"),
    SampleFile("document", "invoice-2024-0117.pdf", "application/pdf"),
    SampleFile("document", "résumé.pdf", "application/pdf"),
    SampleFile("document", "meeting notes.txt", "text/plain"),
    SampleFile("document", "customers-export.csv", "text/csv"),
    SampleFile("document", "roadmap.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
)
VIDEOS = (
    SampleFile("video", "standup-recording.mp4", "video/mp4"),
    SampleFile("video", "product walkthrough.mov", "video/quicktime"),
    SampleFile("video", "screen-capture.webm", "video/webm"),
)
PROCESSED = tuple(sample for sample in AVATARS + DOCUMENTS if sample.is_processed)
EVERY_FILE = AVATARS + DOCUMENTS + VIDEOS

# Backgrounds of the generated portraits.
PALETTE = ((47, 93, 140), (140, 47, 93), (47, 140, 93), (194, 124, 14), (91, 75, 138), (31, 122, 122))
PORTRAIT_SIZE = 320


@lru_cache(maxsize=32)
def portrait(colour: int, content_type: str) -> bytes:
    """A plain head-and-shoulders picture on one of the palette's colours."""
    from PIL import Image, ImageDraw

    background = PALETTE[colour % len(PALETTE)]
    light = tuple(min(255, channel + 110) for channel in background)
    image = Image.new("RGB", (PORTRAIT_SIZE, PORTRAIT_SIZE), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((110, 60, 210, 160), fill=light)
    draw.ellipse((50, 180, 270, 400), fill=light)
    out = io.BytesIO()
    image.save(out, format="PNG" if content_type == "image/png" else "JPEG", quality=88)
    return out.getvalue()


@lru_cache(maxsize=32)
def thumbnail(data: bytes) -> bytes:
    """The JPEG thumbnail processing would make (same size and quality)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        thumb = image.convert("RGB")
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        out = io.BytesIO()
        thumb.save(out, format="JPEG", quality=85)
    return out.getvalue()


@lru_cache(maxsize=32)
def pdf(title: str, pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)  # A4 in points
    writer.add_metadata({"/Title": title, "/Producer": "Hearth demo data"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _csv(rows: int) -> bytes:
    lines = ["name,email,plan,seats"]
    for index in range(rows):
        first, last = FIRST_NAMES[index % len(FIRST_NAMES)], LAST_NAMES[(index * 7) % len(LAST_NAMES)]
        plan = ("free", "team", "business")[index % 3]
        lines.append(f"{first} {last},{email_local_part(first, last)}@example.com,{plan},{1 + index % 12}")
    return ("\n".join(lines) + "\n").encode()


NOTES = """Weekly sync — notes

- Release 0.4 ships Thursday; the migration runs before the web servers restart.
- Support backlog is down to 12 tickets; two are waiting on customers.
- Next: import the Q3 numbers and share the dashboard with the managers.
"""


def _docx(text: str) -> bytes:
    """The smallest Word document that opens: three parts in a ZIP."""
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    return out.getvalue()


VIDEO_HEADERS = {
    "video/mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    "video/quicktime": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",
    "video/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm",
}


def file_bytes(sample: SampleFile, variant: int) -> bytes:
    """The stored object of a demo upload; `variant` varies colours, pages and sizes."""
    if sample.is_image:
        return portrait(variant, sample.content_type)
    if sample.content_type == "application/pdf":
        return pdf(sample.filename.rsplit(".", 1)[0], 1 + variant % 6)
    if sample.content_type == "text/csv":
        return _csv(20 + variant * 9)
    if sample.content_type == "text/plain":
        return NOTES.encode()
    if sample.kind == "video":
        return VIDEO_HEADERS[sample.content_type] + bytes(64 * 1024 * (1 + variant % 4))
    return _docx("Roadmap: uploads in Q3, the admin area in Q4.")


def corrupt_bytes(sample: SampleFile) -> bytes:
    """Bytes that pass the upload's magic-byte check but that processing cannot parse."""
    if sample.content_type == "application/pdf":
        return b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\n" + bytes(range(32, 127)) * 3
    if sample.content_type == "image/png":
        return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
