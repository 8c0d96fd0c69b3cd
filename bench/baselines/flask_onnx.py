"""A bare Flask app serving the same ONNX model (``gunicorn bench.baselines.flask_onnx:app``).

No validation beyond what JSON parsing and numpy do, no metrics: the floor any wrapper adds to.
The model folder comes from ``BENCH_MODEL_DIR`` (an exported ``data/serving/v<N>``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask, Response, request

app = Flask(__name__)
_folder = Path(os.environ["BENCH_MODEL_DIR"])
_names = json.loads((_folder / "metadata.json").read_text())["feature_names"]
_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
_session = ort.InferenceSession(str(_folder / "model.onnx"), sess_options=_options, providers=["CPUExecutionProvider"])
_input = _session.get_inputs()[0].name
_output = _session.get_outputs()[-1].name


@app.post("/api/v1.0/predictions")
def predict() -> Response:
    """Seldon-shaped ``data.names`` + ``data.ndarray`` in, probabilities out."""
    data = request.get_json()["data"]
    order = [data["names"].index(n) for n in _names]
    matrix = np.asarray(data["ndarray"], dtype=np.float32)[:, order]
    (probabilities,) = _session.run([_output], {_input: matrix})
    body = {"data": {"names": ["delay_probability"], "ndarray": [[float(p)] for p in probabilities[:, 1]]}}
    return Response(json.dumps(body), mimetype="application/json")
