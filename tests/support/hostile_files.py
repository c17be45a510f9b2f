"""Corrupt and hostile files for the parser tests: decompression bombs, pathological nesting,
empty and mislabelled files. Each is (content type, file name, bytes)."""

from __future__ import annotations

import io
import zipfile

CONTENT_TYPES = (
    '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    'content-types"><Default Extension="xml" ContentType="application/xml"/><Default '
    'Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
RELS = (
    '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
    "</Relationships>"
)
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


def docx(document_xml: str | bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", RELS)
        archive.writestr("word/document.xml", document_xml)
    return buffer.getvalue()


def docx_bomb(megabytes: int = 100) -> bytes:
    """A DOCX of a few hundred KB whose document.xml inflates to ``megabytes`` MB."""
    paragraph = f"<w:p><w:r><w:t>{'a' * 1000}</w:t></w:r></w:p>"
    body = paragraph * (megabytes * 1024)
    return docx(f'<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>')


def billion_laughs_docx() -> bytes:
    """Entity expansion: ten levels of ten, a billion 'lol's if the XML parser expanded them."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    return docx(
        f'<?xml version="1.0"?><!DOCTYPE w:document [{entities}]><w:document {W}><w:body>'
        "<w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )


def deep_html(depth: int = 200_000, tag: str = "div") -> bytes:
    return (
        b"<html><body>"
        + f"<{tag}>".encode() * depth
        + b"deep text"
        + f"</{tag}>".encode() * depth
        + b"</body></html>"
    )


def hostile_files() -> dict[str, tuple[str | None, str | None, bytes]]:
    return {
        "DOCX decompression bomb": (DOCX, "bomb.docx", docx_bomb()),
        "DOCX with a billion laughs": (DOCX, "laughs.docx", billion_laughs_docx()),
        "DOCX that is a damaged ZIP": (DOCX, "broken.docx", b"PK\x03\x04" + bytes(4096)),
        "HTML nested 200,000 divs deep": ("text/html", "deep.html", deep_html()),
        "HTML nested 100,000 inline tags deep": ("text/html", "deep.html", deep_html(100_000, "b")),
        "Markdown list nested 3,000 levels": (
            "text/markdown",
            "deep.md",
            b"".join(b"  " * i + b"- item\n" for i in range(3000)),
        ),
        "Markdown quote nested 50,000 levels": ("text/markdown", "deep.md", b"> " * 50_000 + b"q"),
        "empty PDF": ("application/pdf", "empty.pdf", b""),
        "empty DOCX": (DOCX, "empty.docx", b""),
        "empty HTML": ("text/html", "empty.html", b""),
        "empty Markdown": ("text/markdown", "empty.md", b""),
        "empty text": ("text/plain", "empty.txt", b""),
        "empty CSV": ("text/csv", "empty.csv", b""),
        "blank text": ("text/plain", "blank.txt", b" \n\t\n"),
        "PNG named .pdf": ("application/pdf", "picture.pdf", PNG),
        "PNG served as HTML": ("text/html", "picture.html", PNG),
        "PNG served as text": ("text/plain", "picture.txt", PNG),
        "PDF named .txt": ("text/plain", "paper.txt", b"%PDF-1.4\n" + bytes(range(256)) * 8),
        "HTML named .docx": (DOCX, "page.docx", b"<html><body><p>hi</p></body></html>"),
        "truncated PDF": ("application/pdf", "cut.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog"),
        "random bytes as CSV": ("text/csv", "noise.csv", bytes(range(256)) * 64),
    }
