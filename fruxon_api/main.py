"""`uvicorn fruxon_api.main:app`: the app configured from FRUXON_* variables."""

from fruxon_api.app import create_app

app = create_app()
