"""PDF and DOCX documents, through unstructured: the text layer of a PDF, a Word document's
structure, and clear reasons when there is no text to be had."""

from __future__ import annotations

import io

from fruxon_pipelines.elements import Element
from fruxon_pipelines.parsing.detect import ParseError, is_docx_zip
from fruxon_pipelines.parsing.partitioning import partition_function, to_elements

# A DOCX is a ZIP of XML parts. A "zip bomb" declares parts hundreds of times larger than the
# file, and parsing XML costs time and memory in proportion to it (200 MB of document.xml held
# a worker for over ten minutes). zipfile never inflates past a member's declared size, so the
# declared sizes bound the work. 64 MiB of XML is far beyond any real document's text.
MAX_DOCX_XML_BYTES = 64 * 1024 * 1024


def parse_pdf(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    if b"%PDF-" not in data[:1024]:
        raise ParseError("The file is not a PDF (it does not start with a PDF header).")
    partition_pdf = partition_function("pdf", "partition_pdf")
    # strategy="fast": the text layer only, no OCR or layout model. languages is only used for
    # OCR and metadata here; naming it silences a warning logged on every call.
    items = partition_pdf(file=io.BytesIO(data), strategy="fast", languages=["eng"])
    elements = to_elements(items, guessed_titles=True, paged=True)
    if not elements:
        # partition_pdf reports unreadable PDFs by returning nothing (feasibility §2.4): say why.
        raise ParseError(_why_pdf_is_empty(data))
    return elements


def _why_pdf_is_empty(data: bytes) -> str:
    if b"%%EOF" not in data[-2048:]:
        return "The PDF is truncated or corrupt (its end-of-file marker is missing)."
    try:
        import pikepdf

        with pikepdf.open(io.BytesIO(data)) as pdf:
            pages = len(pdf.pages)
    except Exception as exc:
        if type(exc).__name__ == "PasswordError":
            return "The PDF is password-protected; remove the password and upload it again."
        return f"The PDF is corrupt and cannot be read ({exc})."
    if pages == 0:
        return "The PDF has no pages."
    return (
        f"The PDF has {pages} page(s) but no extractable text; it is probably scanned images "
        "(OCR is not supported)."
    )


def parse_docx(data: bytes, charset: str | None, url: str | None) -> list[Element]:
    if not data.startswith(b"PK"):
        raise ParseError("The file is not a valid DOCX document (it is not a ZIP archive).")
    if not is_docx_zip(data):
        raise ParseError(
            "The file is not a valid DOCX document (a damaged ZIP archive, or one without "
            "word/document.xml)."
        )
    _refuse_zip_bomb(data)
    partition_docx = partition_function("docx", "partition_docx")
    return to_elements(partition_docx(file=io.BytesIO(data)), guessed_titles=False, paged=False)


def _refuse_zip_bomb(data: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        declared = sum(
            info.file_size
            for info in archive.infolist()
            if info.filename.endswith((".xml", ".rels"))
        )
    if declared > MAX_DOCX_XML_BYTES:
        raise ParseError(
            f"The DOCX document expands to {declared // 2**20} MB of XML from "
            f"{max(1, len(data) // 2**10)} KB (the limit is {MAX_DOCX_XML_BYTES // 2**20} MB): "
            "it is refused as a decompression bomb."
        )
