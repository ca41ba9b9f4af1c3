"""What the Kubernetes informer's cache keeps of an object (`informer.slim`): managedFields' field
sets cut to their top-level keys, anything of another shape (an API server or proxy sending odd
JSON) left as it came rather than failing the watch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.backends.kubernetes.informer import slim


def test_field_sets_keep_their_top_level_keys_only() -> None:
    obj = {
        "metadata": {
            "name": "a",
            "managedFields": [
                {"manager": "m", "time": "t", "fieldsV1": {"f:spec": {"f:replicas": {}}, "f:metadata": {"f:x": {}}}},
                {"manager": "k", "subresource": "scale", "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            ],
        },
        "spec": {"replicas": 2},
    }
    assert slim(obj) is obj
    assert obj["metadata"]["managedFields"] == [
        {"manager": "m", "time": "t", "fieldsV1": {"f:spec": {}, "f:metadata": {}}},
        {"manager": "k", "subresource": "scale", "fieldsV1": {"f:spec": {}}},
    ]
    assert obj["spec"] == {"replicas": 2}


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"metadata": None},
        {"metadata": "not a mapping"},
        {"metadata": {"managedFields": None}},
        {"metadata": {"managedFields": "not a list"}},
        {"metadata": {"managedFields": [None, 3, "x", {"fieldsV1": None}, {"fieldsV1": [1]}, {}]}},
    ],
)
def test_odd_shapes_are_left_as_they_came(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    assert slim(obj) == before
