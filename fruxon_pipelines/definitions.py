"""The code location: assets, checks, the ingestion job, sensors and resources, wired once."""

import dagster as dg

from fruxon_pipelines.jobs import INGESTION_ASSETS, INGESTION_CHECKS, index_checks_job, ingest_job
from fruxon_pipelines.orchestration.run_workers import fork_run_workers_in_code_server
from fruxon_pipelines.resources import build_resources
from fruxon_pipelines.sensors.auto_update import build_poll_sensor, build_webhook_sensor
from fruxon_pipelines.sensors.pending_operations import pending_operations_sensor
from fruxon_pipelines.sensors.staging_sweep import staging_sweep_sensor
from fruxon_pipelines.settings import get_settings

settings = get_settings()
# In the code server only: its runs fork from a server that has imported all this once.
fork_run_workers_in_code_server(settings.run_worker_start)

defs = dg.Definitions(
    assets=INGESTION_ASSETS,
    asset_checks=INGESTION_CHECKS,
    jobs=[ingest_job, index_checks_job],
    sensors=[
        pending_operations_sensor,
        staging_sweep_sensor,
        build_webhook_sensor(settings),
        build_poll_sensor(settings),
    ],
    resources=build_resources(settings),
)
