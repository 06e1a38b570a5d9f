"""`[otlp]` in config.toml: every problem by key path, secrets from the environment, and
how the file and the standard `OTEL_EXPORTER_OTLP_*` variables combine."""

from __future__ import annotations

import io
from typing import Any

import pytest

from monitor.config import ConfigError, parse_config
from monitor.report import print_config
from monitor.schema import Config

SECRET = "Basic dGVzdC1vdGxwLWhlYWRlci1zZWNyZXQ="


def load(otlp: dict[str, Any], **environ: str) -> Config:
    return parse_config({"otlp": otlp}, environ=environ, source="config.toml")


def problems(otlp: dict[str, Any], **environ: str) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load(otlp, **environ)
    return refused.value.problems


def test_without_a_section_there_is_no_push() -> None:
    assert parse_config({}, environ={}).otlp is None


def test_defaults() -> None:
    otlp = load({}).otlp
    assert otlp is not None
    assert otlp.push_endpoint == "http://localhost:4318/v1/metrics"
    assert (otlp.interval_seconds, otlp.push_temporality, otlp.headers) == (60.0, "cumulative", {})


def test_every_problem_is_named_by_its_key_path() -> None:
    found = problems(
        {
            "endpoint": "localhost:4318",
            "headers": {"authorization": {"env": "OTLP_AUTH"}, "x-team": {"env": "a b"}},
            "interval_seconds": 0,
            "temporality": "sometimes",
            "resource_attributes": {"team": 3},
            "extra": True,
        }
    )
    assert found == [
        "otlp.endpoint: must be an absolute http:// or https:// URL",
        "otlp.headers.authorization: environment variable OTLP_AUTH is not set",
        (
            "otlp.headers.x-team.env: must be the name of an environment variable, not the "
            "value itself (letters, digits and _ only)"
        ),
        "otlp.interval_seconds: input should be greater than or equal to 1 (got 0)",
        "otlp.temporality: Input should be 'cumulative' or 'delta'",
        "otlp.resource_attributes.team: Input should be a valid string",
        "otlp.extra: unknown key (check the spelling; see the README's configuration reference)",
    ]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Content-Type": {"env": "A"}}, "'Content-Type' is set by the exporter itself"),
        ({"bad name": {"env": "A"}}, "'bad name' is not an HTTP header name"),
        ({"X-A": {"env": "A"}, "x-a": {"env": "A"}}, "'x-a' is given twice"),
    ],
)
def test_header_names_are_checked(headers: dict[str, Any], message: str) -> None:
    (problem,) = problems({"headers": headers}, A="value")
    assert problem.startswith(f"otlp.headers: {message}")


def test_a_header_value_is_a_secret_read_from_the_environment() -> None:
    otlp = load({"headers": {"Authorization": {"env": "OTLP_AUTH"}}}, OTLP_AUTH=f" {SECRET}\n").otlp
    assert otlp is not None
    assert otlp.headers["Authorization"].value.get_secret_value() == SECRET  # stripped
    assert SECRET not in repr(otlp)
    out = io.StringIO()
    print_config(Config(otlp=otlp), "config.toml", [], out)
    assert SECRET not in out.getvalue()
    assert f"header Authorization: ******** ({len(SECRET)} chars, env OTLP_AUTH)" in out.getvalue()


@pytest.mark.parametrize(
    ("value", "message"),
    [("  ", "is empty"), ("a\u00e9", "holds characters a header cannot carry")],
)
def test_unusable_header_values_are_refused_without_echo(value: str, message: str) -> None:
    (problem,) = problems({"headers": {"dd-api-key": {"env": "DD_API_KEY"}}}, DD_API_KEY=value)
    assert problem.startswith(f"otlp.headers.dd-api-key: environment variable DD_API_KEY {message}")


def test_the_endpoint_comes_from_the_file_then_the_standard_variables() -> None:
    metrics = "http://metrics-only:4318/custom"
    base = "https://otlp-gateway.example/otlp/"
    file_endpoint = "http://collector:4318/v1/metrics"
    both = {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": metrics, "OTEL_EXPORTER_OTLP_ENDPOINT": base}

    def endpoint(otlp: dict[str, Any], **environ: str) -> str:
        loaded = load(otlp, **environ).otlp
        assert loaded is not None
        return loaded.push_endpoint

    assert endpoint({"endpoint": file_endpoint}, **both) == file_endpoint
    assert endpoint({}, **both) == metrics  # the signal's own variable, used as it is
    assert endpoint({}, OTEL_EXPORTER_OTLP_ENDPOINT=base) == base + "v1/metrics"


def test_a_bad_endpoint_variable_is_named() -> None:
    (problem,) = problems({}, OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318")
    assert problem == (
        "otlp: endpoint from $OTEL_EXPORTER_OTLP_ENDPOINT must be an absolute "
        "http:// or https:// URL"
    )


def test_credentials_never_sit_in_the_endpoint() -> None:
    for url in ("https://user:pw@otlp.example/v1/metrics", "https://otlp.example/v1/metrics?key=k"):
        (problem,) = problems({"endpoint": url})
        assert problem == "otlp.endpoint: must not carry a user, query or fragment (use headers)"


def test_temporality_from_the_file_then_the_standard_variable() -> None:
    variable = {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "DELTA"}
    delta = load({}, **variable).otlp
    assert delta is not None and delta.push_temporality == "delta"
    cumulative = load({"temporality": "cumulative"}, **variable).otlp
    assert cumulative is not None and cumulative.push_temporality == "cumulative"
