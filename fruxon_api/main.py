"""`uvicorn fruxon_api.main:app`: the app configured from FRUXON_* variables."""

from fruxon_api.app import create_app
from fruxon_api.heap import freeze_long_lived

app = create_app()
# What start-up built (Dagster, LanceDB, pydantic models: ~140,000 objects), and what later
# lazy imports add, lives as long as the process: kept out of full collections' walks.
freeze_long_lived()
