"""ferops components.

Importing any component turns the third-party telemetry off for this process and every
process it starts (MLflow, DVC, albumentations' update check, Great Expectations): the one
place the opt-outs are set. The DVC command line reads ``core.analytics = false`` from
``.dvc/config``.
"""

import os

TELEMETRY_OFF: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "GX_ANALYTICS_ENABLED": "false",
}
for _key, _value in TELEMETRY_OFF.items():
    os.environ.setdefault(_key, _value)
