"""The served model: loaded from the exported folder, swapped atomically when the link moves.

``ctloop deploy`` exports a registry version to ``v<N>/`` (``model.onnx``, ``metadata.json``,
``model.json``) and renames a new ``current`` link over the old one. Each worker looks at the
link's target at most every ``swap_check_s``; when it changed, it loads the new folder fully
(ONNX session, metadata, drift cut points) and only then replaces its one reference to the
:class:`LoadedModel`. A request takes that reference once, so it is answered entirely by the
old model or entirely by the new one, and a folder that fails to load leaves the old one serving.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ctloop.contract.layout import METADATA_FILE, MODEL_CARD, ONNX_FILE

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model folder is missing or incomplete."""


@dataclass(frozen=True)
class LoadedModel:
    """One model version, ready to score: never mutated after it is built."""

    target: str
    session: ort.InferenceSession
    input_name: str
    output_name: str
    feature_names: tuple[str, ...]
    index: dict[str, int]
    layout: dict[str, Any]
    card: dict[str, Any]
    cuts: dict[str, np.ndarray]
    reference: dict[str, Any]
    """``reference_fractions`` of the metadata: the training shares of each drift bucket."""

    @property
    def version(self) -> str:
        """The registry version."""
        return str(self.card.get("version", "unknown"))

    def tags(self) -> dict[str, str]:
        """What every response carries in ``meta.tags``."""
        return {
            "model_name": str(self.card.get("name", "")),
            "model_version": self.version,
            "alias": str(self.card.get("alias", "")),
            "feature_service": str(self.card.get("feature_service", "")),
            "git_sha": str(self.card.get("git_sha", "")),
            "data_sha256": str(self.card.get("data_sha256", "")),
        }

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of a 15+ minute delay per row of a float32 matrix in ``feature_names`` order."""
        (probabilities,) = self.session.run([self.output_name], {self.input_name: matrix})
        return np.asarray(probabilities[:, 1], dtype=np.float64)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # one thread per worker: the workers already use the cores, more threads only contend
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def load_model(folder: Path, target: str, fallback_card: dict[str, Any] | None = None) -> LoadedModel:
    """Load a model folder completely, or raise :class:`ModelLoadError`.

    ``model.json`` (written by ``ctloop deploy`` locally) names the version; a folder Seldon's
    storage initializer downloaded has none, and ``fallback_card`` (the deploy step's
    parameters) says it instead.
    """
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
        card_file = folder / MODEL_CARD
        card = json.loads(card_file.read_text()) if card_file.exists() or not fallback_card else dict(fallback_card)
        session = _session(folder / ONNX_FILE)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model from {folder}: {exc}") from exc
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
        raise ModelLoadError(f"cannot load ONNX model from {folder}: {exc}") from exc
    names = tuple(metadata.get("feature_names", ()))
    layout = metadata.get("feature_layout") or {}
    if not names or not layout.get("views"):
        raise ModelLoadError(f"{folder / METADATA_FILE} lacks feature_names or feature_layout: re-export it")
    laid_out = {n for part in ("views", "on_demand") for v in layout.get(part, {}).values() for n in v["features"]}
    if laid_out != set(names):
        raise ModelLoadError(
            f"{folder}: feature_layout does not cover the model's features {sorted(set(names) ^ laid_out)}"
        )
    outputs = [o.name for o in session.get_outputs()]
    quantiles = metadata.get("reference_quantiles", {})
    return LoadedModel(
        target=target,
        session=session,
        input_name=session.get_inputs()[0].name,
        output_name=outputs[-1],  # skl2onnx: [label, probabilities]
        feature_names=names,
        index={n: i for i, n in enumerate(names)},
        layout=layout,
        card=card,
        cuts={n: np.asarray(quantiles.get(n, []), dtype=np.float64) for n in names},
        reference=metadata.get("reference_fractions") or {},
    )


class ModelWatcher:
    """Keeps the worker's model in step with the ``model_dir`` link."""

    def __init__(self, model_dir: Path, check_every_s: float, fallback_card: dict[str, Any] | None = None) -> None:
        """Nothing is loaded until :meth:`start` (Seldon calls ``load`` in each worker)."""
        self.model_dir = model_dir
        self.check_every_s = check_every_s
        self.fallback_card = fallback_card
        self._model: LoadedModel | None = None
        self._next_check = 0.0
        self._failed_target = ""

    def _target(self) -> str:
        try:
            return str(self.model_dir.readlink())
        except OSError:
            return str(self.model_dir.resolve())  # a plain folder (a cluster's model volume)

    def _folder(self, target: str) -> Path:
        path = Path(target)
        return path if path.is_absolute() else self.model_dir.parent / path

    def start(self) -> LoadedModel:
        """Load the model the link points at now (errors propagate: a worker without a model must not start)."""
        target = self._target()
        self._model = load_model(self._folder(target), target, self.fallback_card)
        self._next_check = time.monotonic() + self.check_every_s
        return self._model

    def current(self) -> LoadedModel:
        """The model to answer this request with (reloaded first if the link moved)."""
        model = self._model
        if model is None:
            return self.start()
        now = time.monotonic()
        if now < self._next_check:
            return model
        self._next_check = now + self.check_every_s
        target = self._target()
        if target in (model.target, self._failed_target):
            return model
        try:
            fresh = load_model(self._folder(target), target, self.fallback_card)
        except ModelLoadError:
            self._failed_target = target  # tried once; a later deploy moves the link again
            log.exception("new model at %s did not load; v%s keeps serving", target, model.version)
            return model
        self._model = fresh
        log.info("swapped model v%s -> v%s", model.version, fresh.version)
        return fresh

    @property
    def loaded(self) -> LoadedModel | None:
        """The model now in use, if any (no reload check)."""
        return self._model
