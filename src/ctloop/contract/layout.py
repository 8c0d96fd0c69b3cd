"""The serving folder's layout: what the platform writes and serving reads.

``ctloop deploy`` exports a registry version to ``<data_dir>/serving/v<N>/`` (the ONNX model, its
metadata, a model card) and renames a new ``current`` link over the old one; serving loads what
``current`` points at. A cluster's model folder (Seldon's download) has the same files, without
the card.
"""

from __future__ import annotations

from pathlib import Path

ONNX_FILE = "model.onnx"
"""The model, exported to ONNX (serving runs it with onnxruntime)."""
METADATA_FILE = "metadata.json"
"""Feature names and order, the feature service's layout, drift references, training window."""
MODEL_CARD = "model.json"
"""Name, version, alias and lineage of an exported version (written by ``ctloop deploy``)."""
CURRENT = "current"
"""The link serving follows to the deployed version's folder."""
SERVING_FOLDER = "serving"


def serving_dir(data_dir: Path) -> Path:
    """Where exported model folders and the ``current`` link live under a data folder."""
    return Path(data_dir) / SERVING_FOLDER
