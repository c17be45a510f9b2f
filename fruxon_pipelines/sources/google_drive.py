"""Google Drive: the files under one folder (recursively) or in one shared drive.

Against the Drive API v3:
- a **full listing** walks the folder tree with ``files.list`` (``q="'<id>' in parents and
  trashed = false"``, explicit ``fields``, ``pageToken`` to the end of every folder). Before it
  starts, ``changes.getStartPageToken`` is taken, so nothing that changes during the listing is
  missed by the next refresh;
- a **refresh** reads ``changes.list`` from the stored page token to ``newStartPageToken``:
  changed files in scope are fetched, removed (``removed: true``), trashed, or moved-out ones are
  ``gone``, and a folder that moves in is listed whole. The listing is then incremental, so
  nothing else is touched; ``force`` (or a token Drive no longer accepts) does a full listing;
- a file's version is its ``version`` (it rises with every change) with ``md5Checksum``;
- Google Docs are exported as HTML, Sheets as CSV (the first sheet), Slides as plain text;
  other files are downloaded (``alt=media``) when their type can be parsed, and skipped when
  not. An export or download Drive refuses (403 ``exportSizeLimitExceeded``,
  ``fileNotDownloadable`` …) fails that document only;
- 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` are retried like 429.
Credentials: OAuth 2.0 (drive.readonly), refreshed on expiry and on 401.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fruxon_pipelines.errors import INVALID_CONFIG
from fruxon_pipelines.parsing import SUPPORTED_CONTENT_TYPES
from fruxon_pipelines.sources.base import FetchedItem, KnownDocument, SourceError
from fruxon_pipelines.sources.provider_http import (
    ProviderClient,
    ProviderError,
    ProviderSource,
    bearer_auth,
    reach_options,
    unchanged,
)

FOLDER = "application/vnd.google-apps.folder"
EXPORTS = {
    "application/vnd.google-apps.document": ("text/html", ".html"),
    "application/vnd.google-apps.spreadsheet": ("text/csv", ".csv"),
    "application/vnd.google-apps.presentation": ("text/plain", ".txt"),
}
FILE_FIELDS = "id,name,mimeType,modifiedTime,md5Checksum,version,webViewLink,parents,trashed,size"
CHANGE_FIELDS = f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))"
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
MAX_FILE_BYTES = 50 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def file_key(file_id: str) -> str:
    return f"gdrive:file:{file_id}"


class GoogleDriveParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folderId: str = Field(
        default="root", description="The folder to index, with its sub-folders (root: My Drive)."
    )
    driveId: str | None = Field(
        default=None, description="A shared drive; folderId then defaults to the drive itself."
    )

    @field_validator("folderId", "driveId")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and not _ID.match(value):
            raise ValueError("is not a Drive id")
        return value


def _reason(response: Any) -> str | None:
    try:
        errors = response.json()["error"]["errors"]
        return errors[0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _rate_limited(response: Any) -> bool:
    return response.status_code == 403 and _reason(response) in RATE_LIMIT_REASONS


class GoogleDriveSource(ProviderSource):
    key_prefix = "gdrive:file:"

    def __init__(self, params: GoogleDriveParameters, reach: Any) -> None:
        settings = reach.settings
        self.params = params
        self.state = reach.state or {}
        self.root = (
            params.driveId if params.driveId and params.folderId == "root" else (params.folderId)
        )
        self.client = ProviderClient(
            "google_drive",
            settings.google_drive_api_url,
            is_rate_limited=_rate_limited,
            **bearer_auth(settings, "google_drive", reach.credentials),
            **reach_options(reach),
        )

    def _drive_params(self) -> dict[str, Any]:
        if not self.params.driveId:
            return {}
        return {
            "driveId": self.params.driveId,
            "corpora": "drive",
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
        }

    # listings ---------------------------------------------------------------------------------

    def children(self, folder_id: str) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            params = {
                "q": f"'{folder_id}' in parents and trashed = false",
                "fields": f"nextPageToken,files({FILE_FIELDS})",
                "pageSize": 1000,
                **self._drive_params(),
            }
            if token:
                params["pageToken"] = token
            answer = self.client.get_json("/drive/v3/files", params=params)
            yield from answer.get("files") or []
            token = answer.get("nextPageToken")
            if not token:
                return

    def walk(self, folder_id: str, folders: set[str]) -> Iterator[dict[str, Any]]:
        """Every file under ``folder_id``; the folders met are added to ``folders``."""
        pending = [folder_id]
        folders.add(folder_id)
        while pending:
            for item in self.children(pending.pop()):
                if item.get("mimeType") == FOLDER:
                    if item["id"] not in folders:
                        folders.add(item["id"])
                        pending.append(item["id"])
                else:
                    yield item

    def start_page_token(self) -> str:
        params = {"supportsAllDrives": "true", "driveId": self.params.driveId}
        answer = self.client.get_json(
            "/drive/v3/changes/startPageToken", params={k: v for k, v in params.items() if v}
        )
        return str(answer["startPageToken"])

    def changes(self, token: str) -> tuple[list[dict[str, Any]], str]:
        """The changes since ``token``, and the token to start from next time."""
        found: list[dict[str, Any]] = []
        while True:
            params = {
                "pageToken": token,
                "pageSize": 1000,
                "includeRemoved": "true",
                "fields": CHANGE_FIELDS,
                **{k: v for k, v in self._drive_params().items() if k != "corpora"},
            }
            answer = self.client.get_json("/drive/v3/changes", params=params)
            found.extend(answer.get("changes") or [])
            if answer.get("newStartPageToken"):
                return found, str(answer["newStartPageToken"])
            token = answer.get("nextPageToken")
            if not token:
                raise SourceError("Drive's change list ended without a new start token")

    # reading ----------------------------------------------------------------------------------

    @staticmethod
    def indexable(item: dict[str, Any]) -> bool:
        mime = item.get("mimeType", "")
        return mime in EXPORTS or mime in SUPPORTED_CONTENT_TYPES

    def _item(self, item: dict[str, Any], previous: KnownDocument | None, force: bool):
        key = file_key(item["id"])
        version = f"{item.get('version', '')}:{item.get('md5Checksum', '')}"
        mime = item.get("mimeType", "")
        common = {
            "source_url": item.get("webViewLink"),
            "title": item.get("name"),
            "etag": version,
            "last_modified": item.get("modifiedTime"),  # what date filters of searches read
        }
        if unchanged(previous, version, force):
            return FetchedItem(source_key=key, status="unchanged", **common)
        if int(item.get("size") or 0) > MAX_FILE_BYTES:
            return FetchedItem(source_key=key, status="failed", error="larger than 50 MB", **common)
        try:
            if mime in EXPORTS:
                target, suffix = EXPORTS[mime]
                response = self.client.request(
                    "GET", f"/drive/v3/files/{item['id']}/export", params={"mimeType": target}
                )
                name, content_type = f"{item.get('name') or item['id']}{suffix}", target
            else:
                params = {"alt": "media", "supportsAllDrives": "true"}
                response = self.client.request(
                    "GET", f"/drive/v3/files/{item['id']}", params=params
                )
                name, content_type = item.get("name") or item["id"], mime
        except ProviderError as error:
            if error.status == 404:
                return FetchedItem(source_key=key, status="gone", **common)
            if error.status == 403:  # this file only: too large to export, not downloadable …
                return FetchedItem(source_key=key, status="failed", error=str(error), **common)
            raise
        return FetchedItem(
            source_key=key,
            status="fetched",
            file_name=name,
            content_type=content_type,
            data=response.content,
            **common,
        )

    def list_items(self, known: Mapping[str, KnownDocument], force: bool):
        token = self.state.get("pageToken")
        listed = None
        if token and not force:
            try:
                listed = self.changes(str(token))
            except ProviderError as error:
                if error.status not in (400, 404):  # else a token Drive no longer takes
                    raise
        if listed is not None and not self._a_folder_left(listed[0]):
            yield from self._refresh(known, *listed)
        else:
            yield from self._full(known, force)

    def _full(self, known, force: bool) -> Iterator[FetchedItem]:
        token = self.start_page_token()
        folders: set[str] = set()
        try:
            for item in self.walk(self.root, folders):
                if self.indexable(item):
                    yield self._item(item, known.get(file_key(item["id"])), force)
        except ProviderError as error:
            if error.status == 404 and not folders - {self.root}:
                raise SourceError(
                    f"parameters.folderId: no folder {self.root} visible to these credentials",
                    INVALID_CONFIG,
                ) from error
            raise
        self.next_state = {"pageToken": token, "folders": sorted(folders)}

    def _a_folder_left(self, changes: list[dict]) -> bool:
        """Whether a folder of the asset was removed, trashed or moved out: its files have no
        changes of their own, so only a full listing finds them gone."""
        folders = set(self.state.get("folders") or [self.root])
        for change in changes:
            if change.get("fileId") not in folders or change.get("fileId") == self.root:
                continue
            item = change.get("file") or {}
            if change.get("removed") or item.get("trashed"):
                return True
            if not set(item.get("parents") or []) & folders:
                return True
        return False

    def _refresh(self, known, changes: list[dict], next_token: str) -> Iterator[FetchedItem]:
        self.complete_listing = False
        folders = set(self.state.get("folders") or [self.root])
        latest: dict[str, dict[str, Any]] = {}
        for change in changes:  # the last change of a file is its state now
            latest[change["fileId"]] = change
        # Folders that came into scope first: their whole content is new to the asset.
        walked: set[str] = set()
        for file_id, change in latest.items():
            item = change.get("file") or {}
            in_scope = bool(set(item.get("parents") or []) & folders)
            moved_in = in_scope and not change.get("removed") and not item.get("trashed")
            if item.get("mimeType") == FOLDER and moved_in and file_id not in folders:
                for inner in self.walk(file_id, folders):
                    if self.indexable(inner) and inner["id"] not in walked:
                        walked.add(inner["id"])
                        yield self._item(inner, known.get(file_key(inner["id"])), False)
        for file_id, change in latest.items():
            item = change.get("file") or {}
            key = file_key(file_id)
            if item.get("mimeType") == FOLDER or file_id in walked:
                continue
            gone = change.get("removed") or item.get("trashed")
            in_scope = bool(set(item.get("parents") or []) & folders)
            if gone or not in_scope or not self.indexable(item):
                if key in known:
                    yield FetchedItem(source_key=key, status="gone")
                continue
            yield self._item(item, known.get(key), False)
        self.next_state = {"pageToken": next_token, "folders": sorted(folders)}

    def fetch_one(self, key: str, item_id: str, previous: KnownDocument | None, force: bool):
        item = self.client.get_json(
            f"/drive/v3/files/{item_id}",
            params={"fields": FILE_FIELDS, "supportsAllDrives": "true"},
        )
        if item.get("trashed") or not self.indexable(item):
            return FetchedItem(source_key=key, status="gone")
        return self._item(item, previous, force)
