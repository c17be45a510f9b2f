"""Operations: one Dagster run each; status derived from the run, counters from the catalog."""

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from fruxon_api.auth import Reader, Writer, read_access
from fruxon_api.deps import Paging, Svc, load_asset, services
from fruxon_api.present import operation_out, price_of
from fruxon_client.models import OperationOut, Page
from fruxon_pipelines.services import operations as operation_service

router = APIRouter(prefix="/v1/tenants/{tenant}/assets/{asset}", tags=["operations"])


# The poll first: routing tries routes in order (fruxon_api/app.py).
@router.get("/operations/{operation}", response_model=OperationOut)
async def get_operation(tenant: str, asset: str, operation: str, request: Request):
    """The endpoint clients poll. It answers from the event loop when it can: two primary-key
    reads of the catalog and, for an operation that has settled or whose run was read a moment
    ago, nothing else. A run that may still change is read from Dagster in the thread pool."""
    # The token is checked as `Reader` checks it, but here rather than declared: FastAPI's
    # solving of the two dependencies was ~15 % of a poll's CPU (bench/bench_polling.py).
    await read_access(request, tenant)
    svc = await services(request)
    current, found = operation_service.asset_and_operation(svc, tenant, asset, operation)
    state = svc.statuses.known(found)
    if state is None:
        state = await run_in_threadpool(svc.statuses.of, found)
    return operation_out(found, state, price_of(current))


@router.get("/operations", response_model=Page[OperationOut])
def list_operations(tenant: str, asset: str, principal: Reader, svc: Svc, paging: Paging):
    current = load_asset(svc, tenant, asset)
    operations = operation_service.list_operations(svc, current.id)
    page = paging.window(operations)
    states = operation_service.states_of(svc, current.id, page)
    price = price_of(current)
    return Page[OperationOut](
        items=[operation_out(op, state, price) for op, state in zip(page, states, strict=True)],
        nextPageToken=paging.next_token(len(operations)),
        totalCount=len(operations),
    )


@router.post("/operations/{operation}:cancel", response_model=OperationOut)
def cancel_operation(tenant: str, asset: str, operation: str, principal: Writer, svc: Svc):
    """Idempotent: a finished operation is returned unchanged."""
    current = load_asset(svc, tenant, asset)
    found = operation_service.load_operation(svc, current, operation)
    state = operation_service.cancel_operation(svc, found)
    return operation_out(found, state, price_of(current))
