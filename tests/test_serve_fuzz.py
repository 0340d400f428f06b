"""Schema fuzz: schemathesis generates requests from /openapi.json; no input may cause a 5xx.

Driven through Hypothesis directly (one property per API operation) rather than through
schemathesis' pytest plugin, which does not load under this pytest version.
"""

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


def test_no_server_errors(tmp_path, make_model_dir):
    from genspot.serve import create_app

    app = create_app(make_model_dir(tmp_path / "m", "spot_resnet_s"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/explain", "/v1/models", "/healthz"}
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case):
            case.call_and_validate(checks=[not_a_server_error])

        fuzz()
