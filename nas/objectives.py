"""Moved: latency timing to nas.latency, Pareto math to nas.pareto, its drawing to nas.plots, records to nas.records."""

from nas.latency import measure_latency  # noqa: F401 (nas.candidate imports it from here until it is updated)
from nas.records import as_rows, load_records as _load_records


def load_records(path, drop_torn_last=False):  # nas.final reads rows from here until it is updated
    return as_rows(_load_records(path, drop_torn_last))
