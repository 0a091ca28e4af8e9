"""The API's failures, by name: callers catch these, never status numbers."""

from __future__ import annotations

import pytest

from edge_operator import kube


@pytest.mark.parametrize(
    ("status", "message", "named"),
    [
        (409, "the object has been modified", kube.ConflictError),
        (404, 'nodes "n" not found', kube.NotFoundError),
        (403, "denied by ValidatingAdmissionPolicy", kube.ForbiddenError),
        (422, "spec.controller: Invalid value: field is immutable", kube.ImmutableError),
        (422, "spec.replicas: Invalid value: -1", kube.InvalidError),
        (400, "json: cannot unmarshal", kube.InvalidError),
        (
            429,
            "Cannot evict pod as it would violate the pod's disruption budget.",
            kube.ThrottledError,
        ),
        (500, "etcdserver: request timed out", kube.TransportError),
        (503, "the server is currently unable to handle the request", kube.TransportError),
        (0, "MaxRetryError: connection refused", kube.TransportError),
        (418, "teapot", kube.KubeError),
    ],
)
def test_each_failure_has_a_name(status: int, message: str, named: type[kube.KubeError]) -> None:
    error = kube.error_for(status, message)
    assert type(error) is named
    assert error.status == status
    assert message in str(error)


def test_refusals_are_what_the_api_server_said_of_an_object() -> None:
    """A refusal is reported and the pass goes on; throttling and transport failures
    fail the pass, which is retried."""
    refused = [409, 404, 403, 422, 400]
    assert all(isinstance(kube.error_for(s, "x"), kube.REFUSALS) for s in refused)
    assert not any(isinstance(kube.error_for(s, "x"), kube.REFUSALS) for s in (429, 500, 0))
    assert isinstance(kube.error_for(422, "field is immutable"), kube.InvalidError)
