"""Operations: one Dagster run each; status derived from the run, counters from the catalog."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fruxon_api.auth import Reader, Writer
from fruxon_api.deps import Paging, Services, Svc, load_asset, parse_uuid, visible_asset
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
async def get_operation(tenant: str, asset: str, operation: str, principal: Reader, svc: Svc):
    """The endpoint clients poll. It runs on the event loop: two primary-key reads of the
    catalog (SQLite in WAL mode never blocks a reader) and, for an operation that has settled,
    nothing else. A run that may still change is read from Dagster in the thread pool, at most
    once per ``RUN_STATUS_TTL_SECONDS`` for all its pollers.
    Thread-pool hops and the GIL handoffs between pool threads were most of its latency."""
    current, found = svc.catalog.get_asset_and_operation(
        parse_uuid(asset, "asset"), parse_uuid(operation, "operation")
    )
    current = visible_asset(current, tenant, asset)
    if found is None or found.asset_id != current.id:
        raise not_found(f"operation {operation}")
    state = svc.runs.known_state(found)
    if state is None:
        state = await run_in_threadpool(svc.runs.state, found)
    return operation_out(found, state, price_of(current))


@router.post("/operations/{operation}:cancel", response_model=OperationOut)
def cancel_operation(tenant: str, asset: str, operation: str, principal: Writer, svc: Svc):
    """Idempotent: a finished operation is returned unchanged."""
    current = load_asset(svc, tenant, asset)
    found = _load(svc, current, operation)
    if svc.runs.state(found).status in {"PENDING", "RUNNING"}:
        svc.runs.cancel(svc.catalog, found)
    return operation_out(found, svc.runs.state(found), price_of(current))
