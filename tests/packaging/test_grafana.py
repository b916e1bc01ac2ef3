"""packaging/grafana/bpfunits.json: a Grafana dashboard of the shape Grafana imports, built only
on metrics the daemon exports (tests/kernel/test_prometheus.py runs its queries for real)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
from prometheus_client import CollectorRegistry

from bpfunits.metrics.node import NodeMetrics
from bpfunits.metrics.reconciles import ReconcileMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "packaging" / "grafana" / "bpfunits.json"
GRID_COLUMNS = 24

# The parts of Grafana's dashboard model (schemaVersion 38) that import and display depend on.
_DATASOURCE = {"type": "object", "required": ["type", "uid"],
               "properties": {"type": {"const": "prometheus"}, "uid": {"type": "string"}}}
SHAPE = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "time": {"type": "object", "required": ["from", "to"]},
        "templating": {"type": "object", "required": ["list"], "properties": {"list": {"type": "array", "items": {
            "type": "object", "required": ["name", "type"],
            "properties": {"type": {"enum": ["datasource", "query", "custom", "interval", "constant"]}}}}}},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "type": {"enum": ["timeseries", "stat", "table", "gauge", "bargauge", "text"]},
                "title": {"type": "string", "minLength": 1},
                "datasource": _DATASOURCE,
                "gridPos": {"type": "object", "required": ["h", "w", "x", "y"], "properties": {
                    "h": {"type": "integer", "minimum": 1}, "w": {"type": "integer", "minimum": 1, "maximum": 24},
                    "x": {"type": "integer", "minimum": 0, "maximum": 23}, "y": {"type": "integer", "minimum": 0}}},
                "targets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["refId", "expr"],
                    "properties": {"refId": {"type": "string"}, "expr": {"type": "string", "minLength": 1},
                                   "datasource": _DATASOURCE}}},
            }}},
    },
}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def exported_names() -> set[str]:
    """Every sample name the daemon's metric families can have."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeMetrics())
    ReconcileMetrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",), "gauge": ("",)}
    return {f.name + s for f in registry.collect() for s in suffixes[f.type]}


def queries(document: dict) -> list[str]:
    return [t["expr"] for p in document["panels"] for t in p["targets"]]


def test_the_dashboard_has_grafanas_shape():
    document = dashboard()
    jsonschema.validate(document, SHAPE)
    panels = document["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids are unique"
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= GRID_COLUMNS, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    variables = {v["name"] for v in document["templating"]["list"]}
    used = {m for text in (json.dumps(panels),) for m in re.findall(r"\$\{?([a-z_]+)", text)} - {"__rate_interval"}
    assert used <= variables, used - variables


def test_the_dashboard_shows_what_the_issue_asks_on_exported_metrics_only():
    document = dashboard()
    names = set(re.findall(r"\bbpfunits_[a-z_]+", " ".join(queries(document))))
    assert names <= exported_names(), names - exported_names()
    titles = " ".join(p["title"].lower() for p in document["panels"])
    for subject in ("packets per second, by unit", "verdicts", "drops", "reconcile latency", "errors"):
        assert subject in titles, subject
