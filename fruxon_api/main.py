"""`uvicorn fruxon_api.main:app`: the app configured from FRUXON_* variables."""

import gc

from fruxon_api.app import create_app

app = create_app()
# What start-up built (Dagster, LanceDB, pydantic models: ~300,000 objects) lives as long as
# the process. Freezing it keeps the cyclic collector from walking all of it again on every
# full collection, a pause every request in flight waits for (with it frozen, full
# collections under polling load took 35-58 ms).
gc.collect()
gc.freeze()
