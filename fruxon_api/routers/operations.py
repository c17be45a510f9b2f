"""Operations: one Dagster run each; status derived from the run, counters from the catalog."""

from fastapi import APIRouter

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Paging, Services, Svc, load_asset, parse_uuid
from fruxon_api.present import operation_out, price_of
from fruxon_api.problems import not_found
from fruxon_api.schemas import OperationOut, Page
from fruxon_pipelines.catalog.models import KnowledgeAsset, Operation

router = APIRouter(prefix="/v1/tenants/{tenant}/assets/{asset}", tags=["operations"])


def _load(svc: Services, asset: KnowledgeAsset, operation_id: str) -> Operation:
    operation = svc.catalog.get_operation(parse_uuid(operation_id, "operation"))
    if operation is None or operation.asset_id != asset.id:
        raise not_found(f"operation {operation_id}")
    return operation


@router.get("/operations", response_model=Page[OperationOut])
def list_operations(tenant: str, asset: str, principal: Reader, svc: Svc, paging: Paging):
    current = load_asset(svc, tenant, asset)
    operations = svc.catalog.list_operations(current.id)
    runs = svc.runs.runs_of_asset(current.id)  # one query for the whole page
    price = price_of(current)
    return Page[OperationOut](
        items=[
            operation_out(op, svc.runs.state(op, runs), price) for op in paging.window(operations)
        ],
        nextPageToken=paging.next_token(len(operations)),
        totalCount=len(operations),
    )


@router.get("/operations/{operation}", response_model=OperationOut)
def get_operation(tenant: str, asset: str, operation: str, principal: Reader, svc: Svc):
    current = load_asset(svc, tenant, asset)
    found = _load(svc, current, operation)
    return operation_out(found, svc.runs.state(found), price_of(current))


@router.post("/operations/{operation}:cancel", response_model=OperationOut)
def cancel_operation(tenant: str, asset: str, operation: str, principal: Writer, svc: Svc):
    """Idempotent: a finished operation is returned unchanged."""
    current = load_asset(svc, tenant, asset)
    found = _load(svc, current, operation)
    if svc.runs.state(found).status in {"PENDING", "RUNNING"}:
        svc.runs.cancel(svc.catalog, found)
    return operation_out(found, svc.runs.state(found), price_of(current))
