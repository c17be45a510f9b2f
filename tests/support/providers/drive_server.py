"""The Google Drive API v3 on 127.0.0.1, in Google's wire format.

- ``files.list`` (``q="'<folder>' in parents and trashed = false"``, ``pageSize``,
  ``pageToken``/``nextPageToken``), ``files.get`` (metadata, or bytes with ``alt=media``; 403
  ``fileNotDownloadable`` for Google Docs), ``files.export`` (HTML / CSV / plain text; 403
  ``exportSizeLimitExceeded`` where a file is marked too large);
- ``changes.getStartPageToken`` and ``changes.list`` over a change log (``nextPageToken`` until
  the last page, which carries ``newStartPageToken``); int64 fields (``version``, ``size``) as
  JSON strings, as Drive sends them;
- errors as ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}],
  "status"}}``: 401 ``authError``, 404 ``notFound``, 403 ``rateLimitExceeded`` (injectable);
- Google's token endpoint: form-encoded, client credentials in the body, PKCE; a refresh
  answers without a new refresh token (the old one stays valid).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from providers.fake_provider import FakeProvider, json_response

DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
FOLDER = "application/vnd.google-apps.folder"
EXPORTABLE = {DOC: "text/html", SHEET: "text/csv"}
_ids = itertools.count(1)
_PARENT = re.compile(r"^'([^']+)' in parents and trashed = false$")


@dataclass
class FakeFile:
    name: str
    mime: str
    parents: list[str]
    content: bytes = b""
    id: str = field(default_factory=lambda: f"1fake{next(_ids):06d}Xy")
    version: int = 1
    trashed: bool = False
    too_large_to_export: bool = False

    def wire(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime,
            "parents": self.parents,
            "trashed": self.trashed,
            "version": str(self.version),
            "modifiedTime": f"2026-12-01T00:00:{self.version % 60:02d}.000Z",
            "webViewLink": f"https://drive.google.com/file/d/{self.id}/view",
        }
        if not self.mime.startswith("application/vnd.google-apps."):
            item["md5Checksum"] = hashlib.md5(self.content).hexdigest()
            item["size"] = str(len(self.content))
        return item


class DriveServer(FakeProvider):
    client_auth = "body"
    token_body = "form"
    rotates_refresh_tokens = False
    token_lifetime_seconds = 3599
    page_cap = 1000

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, FakeFile] = {}
        self.log: list[tuple[str, bool]] = []  # (file id, removed), in order

    # what users do ----------------------------------------------------------------------------

    def add(self, item: FakeFile) -> FakeFile:
        with self.lock:
            self.files[item.id] = item
            self.log.append((item.id, False))
        return item

    def edit(self, item: FakeFile, content: bytes) -> None:
        with self.lock:
            item.content = content
            item.version += 1
            self.log.append((item.id, False))

    def rename(self, item: FakeFile, name: str) -> None:
        with self.lock:
            item.name = name
            item.version += 1  # Drive counts a rename as a change: modifiedTime moves too
            self.log.append((item.id, False))

    def move(self, item: FakeFile, parent: str) -> None:
        with self.lock:
            item.parents = [parent]
            item.version += 1
            self.log.append((item.id, False))

    def trash(self, item: FakeFile) -> None:
        with self.lock:
            item.trashed = True
            self.log.append((item.id, False))

    def delete(self, item: FakeFile) -> None:
        with self.lock:
            del self.files[item.id]
            self.log.append((item.id, True))

    # wire format ------------------------------------------------------------------------------

    def error(self, code: int, reason: str, message: str, status: str, headers=None):
        body = {
            "error": {
                "code": code,
                "message": message,
                "errors": [{"domain": "global", "reason": reason, "message": message}],
                "status": status,
            }
        }
        return json_response(code, body, headers)

    def failure(self, status: int, headers: dict[str, str]):
        if status == 403:
            return self.error(403, "rateLimitExceeded", "Rate Limit Exceeded", "PERMISSION_DENIED")
        return self.error(status, "backendError", "Backend Error", "UNAVAILABLE", headers)

    def api(self, method, path, query, headers, body):
        if not self.bearer_ok(headers):
            return self.error(401, "authError", "Invalid Credentials", "UNAUTHENTICATED")
        if method != "GET":
            return self.error(404, "notFound", "Not Found", "NOT_FOUND")
        if path == "/drive/v3/files":
            match = _PARENT.match(query.get("q", ""))
            if not match:
                return self.error(400, "invalid", "Invalid Value", "INVALID_ARGUMENT")
            parent = match.group(1)
            with self.lock:
                known_folder = parent == "root" or (
                    parent in self.files and self.files[parent].mime == FOLDER
                )
                listed = [
                    f.wire()
                    for f in sorted(self.files.values(), key=lambda f: f.id)
                    if parent in f.parents and not f.trashed
                ]
            if not known_folder:
                return self.error(404, "notFound", f"File not found: {parent}.", "NOT_FOUND")
            return self._paged(listed, query, "files", "nextPageToken")
        if path == "/drive/v3/changes/startPageToken":
            with self.lock:
                return json_response(
                    200, {"kind": "drive#startPageToken", "startPageToken": str(len(self.log) + 1)}
                )
        if path == "/drive/v3/changes":
            return self._changes(query)
        parts = path.removeprefix("/drive/v3/files/").split("/")
        item = self.files.get(parts[0])
        if item is None:
            return self.error(404, "notFound", f"File not found: {parts[0]}.", "NOT_FOUND")
        if len(parts) == 2 and parts[1] == "export":
            if EXPORTABLE.get(item.mime) != query.get("mimeType"):
                return self.error(400, "badRequest", "Export not supported", "INVALID_ARGUMENT")
            if item.too_large_to_export:
                return self.error(
                    403, "exportSizeLimitExceeded", "This file is too large to be exported.",
                    "PERMISSION_DENIED",
                )  # fmt: skip
            return 200, {"Content-Type": query["mimeType"]}, item.content
        if query.get("alt") == "media":
            if item.mime.startswith("application/vnd.google-apps."):
                return self.error(
                    403, "fileNotDownloadable",
                    "Only files with binary content can be downloaded.", "PERMISSION_DENIED",
                )  # fmt: skip
            return 200, {"Content-Type": item.mime}, item.content
        return json_response(200, item.wire())

    def _paged(self, items: list, query: dict[str, str], member: str, token_name: str):
        size = min(int(query.get("pageSize") or 100), self.page_cap)
        start = int(query.get("pageToken") or 0)
        answer: dict[str, Any] = {member: items[start : start + size]}
        if start + size < len(items):
            answer[token_name] = str(start + size)
        return json_response(200, answer)

    def _changes(self, query: dict[str, str]):
        token = query.get("pageToken", "")
        if not token.isdigit():
            return self.error(400, "invalid", "Invalid Value", "INVALID_ARGUMENT")
        with self.lock:
            start = int(token) - 1
            size = min(int(query.get("pageSize") or 100), self.page_cap)
            window = self.log[start : start + size]
            changes = []
            for file_id, removed in window:
                change: dict[str, Any] = {
                    "kind": "drive#change",
                    "changeType": "file",
                    "fileId": file_id,
                    "removed": removed or file_id not in self.files,
                }
                if not change["removed"]:
                    change["file"] = self.files[file_id].wire()
                changes.append(change)
            answer: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
            if start + size < len(self.log):
                answer["nextPageToken"] = str(start + size + 1)
            else:
                answer["newStartPageToken"] = str(len(self.log) + 1)
        return json_response(200, answer)
