"""Reading the Prometheus text format in tests, with prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_value(exposition: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``; None when absent.

    Raises ``AssertionError`` when several samples match, so a test never reads an arbitrary one.
    """
    found = [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{len(found)} samples of {name} match {labels}"
    return found[0] if found else None


def sample_labels(exposition: str, name: str) -> list[dict[str, str]]:
    """The label sets of every sample named ``name``."""
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    ]
