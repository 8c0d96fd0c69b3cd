"""Seldon serving the scikit-learn model directly, as most users deploy it (the bench-sklearn env).

``python -m bench.baselines.sklearn_model fit FOLDER`` fits the same estimator with the same
parameters on the training matrix the platform exported (``X.npy``, ``y.npy``, ``params.json``)
and saves it with joblib: a pickle from the platform's numpy 2 would not load under numpy 1.
``seldon-core-microservice bench.baselines.sklearn_model.SklearnModel --parameters
'[{"name": "model_path", ...}]'`` serves it: ``predict_proba`` per request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np


class SklearnModel:
    """A Seldon model class around a fitted scikit-learn classifier."""

    def __init__(self, model_path: str) -> None:
        """The model loads in each worker (:meth:`load`)."""
        self.model_path = model_path
        self.model: Any = None

    def load(self) -> None:
        """Unpickle the classifier."""
        self.model = joblib.load(self.model_path)

    def predict(self, features: Any, feature_names: Any = None) -> Any:
        """Probability of the positive class per row."""
        del feature_names
        return self.model.predict_proba(np.asarray(features, dtype=np.float32))[:, 1:2]


def fit(folder: Path) -> None:
    """Fit HistGradientBoostingClassifier with the platform's parameters on the exported matrix."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    params = json.loads((folder / "params.json").read_text())
    model = HistGradientBoostingClassifier(**params)
    model.fit(np.load(folder / "X.npy"), np.load(folder / "y.npy"))
    joblib.dump(model, folder / "model.joblib")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "fit":
        sys.exit("usage: python -m bench.baselines.sklearn_model fit FOLDER")
    fit(Path(sys.argv[2]))
