"""The catalog's repositories, one per aggregate; ``catalog.store.Catalog`` combines them."""

from fruxon_pipelines.catalog.repos.api_keys import ApiKeysRepo
from fruxon_pipelines.catalog.repos.assets import AssetsRepo
from fruxon_pipelines.catalog.repos.budgets import BudgetsRepo
from fruxon_pipelines.catalog.repos.credentials import CredentialsRepo
from fruxon_pipelines.catalog.repos.documents import DocumentsRepo
from fruxon_pipelines.catalog.repos.files import FilesRepo
from fruxon_pipelines.catalog.repos.operations import OperationsRepo
from fruxon_pipelines.catalog.repos.webhooks import WebhooksRepo

__all__ = [
    "ApiKeysRepo",
    "AssetsRepo",
    "BudgetsRepo",
    "CredentialsRepo",
    "DocumentsRepo",
    "FilesRepo",
    "OperationsRepo",
    "WebhooksRepo",
]
