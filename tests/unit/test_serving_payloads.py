"""Serving's request, feedback and parameter parsing (serving env code that runs in either env)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from serving.errors import ServingError
from serving.params import ServingParams
from serving.payloads import feature_matrix, parse_feedback, parse_request

NAMES = ["a", "b", "c"]
RESPONSE = {"jsonData": {"probabilities": [0.2, 0.7]}, "meta": {"tags": {"model_version": "3"}}}


def feedback(**change):
    body = {"response": RESPONSE, "truth": {"data": {"ndarray": [0, 1]}}, **change}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_feedback_reads_version_probabilities_and_outcomes():
    """The version comes from the response's tags; outcomes from truth (flat, nested or booleans)."""
    got = parse_feedback(feedback(), 10)
    assert (got.model_version, got.probabilities, got.outcomes) == ("3", [0.2, 0.7], [0, 1])
    nested = parse_feedback(feedback(truth={"data": {"ndarray": [[False], [True]]}}), 10)
    assert nested.outcomes == [0, 1]
    as_json = parse_feedback(feedback(truth={"jsonData": {"delayed": [True, False]}}), 10)
    assert as_json.outcomes == [1, 0]
    ndarray_response = {"data": {"ndarray": [[0.1], [0.9]]}, "meta": {"tags": {"model_version": 4}}}
    assert parse_feedback(feedback(response=ndarray_response), 10).probabilities == [0.1, 0.9]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (feedback(truth=None), "truth"),
        (feedback(truth={"data": {"ndarray": [1]}}), "truth"),
        (feedback(truth={"data": {"ndarray": [1, 2]}}), "truth[1]"),
        (feedback(truth={"data": {"ndarray": ["1", 0]}}), "truth[0]"),
        (
            feedback(response={"jsonData": {"probabilities": [0.2, 1.5]}, "meta": RESPONSE["meta"]}),
            "response.probabilities",
        ),
        (feedback(response={"jsonData": {"probabilities": [0.2, 0.7]}}), "response.meta"),
        (feedback(reward="high"), "reward"),
        (feedback(extra=1), "extra"),
    ],
)
def test_bad_feedback_names_the_field(body, field):
    """Each wrong part of a feedback body is a 400 naming it."""
    with pytest.raises(ServingError) as caught:
        parse_feedback(body, 10)
    assert caught.value.status == 400 and caught.value.field == field


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_feedback_with_non_json_numbers_is_400(constant):
    """NaN and Infinity are refused before protobuf sees them."""
    with pytest.raises(ServingError, match=constant):
        parse_feedback(feedback().replace(b"0.2", constant.encode()), 10)


def test_feature_rows_are_reordered_to_the_model_and_null_is_missing():
    """data.names may come in any order; null becomes NaN."""
    matrix = feature_matrix({"names": ["c", "a", "b"], "ndarray": [[3, 1, None]]}, NAMES, 10)
    assert matrix.dtype == np.float32 and matrix[0, 0] == 1 and math.isnan(matrix[0, 1]) and matrix[0, 2] == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"names": ["a", "b"], "ndarray": [[1, 2]]}, "data.names"),
        ({"names": ["a", "b", "c", "d"], "ndarray": [[1, 2, 3, 4]]}, "data.names"),
        ({"names": ["a", "a", "b"], "ndarray": [[1, 2, 3]]}, "data.names"),
        ({"names": NAMES, "ndarray": []}, "data.ndarray"),
        ({"names": NAMES, "ndarray": [[1, 2]]}, "data.ndarray[0]"),
        ({"names": NAMES, "ndarray": [[1, 2, "3"]]}, "data.ndarray[0][2]"),
        ({"names": NAMES, "ndarray": [[1, 2, float("inf")]]}, "data.ndarray[0][2]"),
        ({"names": NAMES, "ndarray": [[1, 2, 3]] * 11}, "data.ndarray"),
        ({"names": NAMES, "tensor": {}}, "data.tensor"),
    ],
)
def test_bad_feature_rows_name_the_field(data, field):
    """Wrong names, widths, types, non-finite values and oversized batches are 400s naming the spot."""
    with pytest.raises(ServingError) as caught:
        feature_matrix(data, NAMES, 10)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [("text", "request body"), ({"binData": "eA=="}, "binData"), ({}, "jsonData"), ({"meta": []}, "meta")],
)
def test_request_top_level_rules(body, field):
    """A request is an object with exactly one of jsonData or data."""
    with pytest.raises(ServingError) as caught:
        parse_request(body)
    assert caught.value.field == field


def test_parameters_are_typed_and_checked():
    """Seldon passes parameters as typed values or strings; unknown names and bad values are refused."""
    params = ServingParams.from_parameters({"model_dir": "/m", "max_batch": "50", "feature_cache_ttl_s": 0})
    assert params.max_batch == 50 and params.feature_cache_ttl_s == 0.0
    with pytest.raises(ValueError, match="unknown serving parameter"):
        ServingParams.from_parameters({"model_dir": "/m", "max_btach": 5})
    with pytest.raises(ValueError, match="model_dir"):
        ServingParams.from_parameters({})
    with pytest.raises(ValueError, match="max_batch"):
        ServingParams.from_parameters({"model_dir": "/m", "max_batch": 0})
    with pytest.raises(ValueError, match="serving parameters"):
        ServingParams.from_parameters({"model_dir": "/m", "max_batch": "many"})
