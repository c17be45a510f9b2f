"""Launches operations that were written but never got a run (the webserver was down, say).

The API and CLI write the operation row first and then submit through GraphQL; this sensor is
the crash-safe path behind that: `run_key` = operation id, so each operation runs at most once.
Operations the auto-update sensors write (WEBHOOK, POLL) are theirs to relaunch
(``services.auto_update``).
"""

from fruxon_pipelines.sensors.launching import launching_sensor
from fruxon_pipelines.services.auto_update import operations_without_runs

pending_operations_sensor = launching_sensor(
    "pending_operations_sensor",
    5,
    "Runs operations that were written but never submitted.",
    operations_without_runs,
    idle="no operation is waiting for a run",
)
