"""`uvicorn fruxon_api.main:app`: the app configured from FRUXON_* variables."""

import gc

from fruxon_api.app import create_app

app = create_app()
# What start-up built (Dagster, LanceDB, pydantic models: about a million objects) lives as
# long as the process. Freezing it keeps the cyclic collector from walking all of it again on
# every full collection, which stalled requests for up to a second under polling load
# (bench/bench_polling.py, 64 clients).
gc.collect()
gc.freeze()
