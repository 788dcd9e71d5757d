"""The Helm chart's Prometheus Operator objects: the same rules, dashboards, scrapes and alert
routes as the compose stack's monitoring/, in the shape the operator's CRDs accept.

The chart ships copies of monitoring/ (scripts/sync-helm-files.py): the rules extracted from the
rendered PrometheusRule pass promtool and the rule tests of monitoring/prometheus/tests, the
dashboards are byte copies. The field checks use the CRD field lists of crd_fields.py
(prometheus-operator v0.93.0).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.unit.deploy.crd_fields import ALIASES, API_VERSIONS, SCHEMAS, Type
from tests.utils.helm import CHART, NAMESPACE, VALUES_FILES, Rendered, render
from tests.utils.monitoring import (
    ALERTMANAGER_DIR,
    ALERTMANAGER_YML,
    DASHBOARDS_DIR,
    DATASOURCES_DIR,
    PROMETHEUS_YML,
    RULE_TESTS_DIR,
    RULES_DIR,
    load_yaml,
    scrape_jobs,
)
from tests.utils.paths import REPO_ROOT

SYNC = REPO_ROOT / "scripts" / "sync-helm-files.py"
TEMPLATES = ALERTMANAGER_DIR / "templates" / "rakuten.tmpl"
FULLNAME = "rakuten"
WEBHOOK = ("--set", "alertWebhook.enabled=true")
# job label -> (the Service it scrapes, its port's name)
SCRAPES = {"serve": ("serve", "http"), "monitor": ("monitor", "metrics"),
           "pushgateway": ("pushgateway", "http")}  # fmt: skip
# Every shipped values file (those that exist), and the webhook switched on
RENDERS: list[tuple[str, ...]] = [
    (name,) for name, path in VALUES_FILES.items() if path is None or path.exists()
]
RENDERS.append(("default", *WEBHOOK))


def _tool(name: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    path = shutil.which(name)
    assert path, f"{name} is missing: run `make system-deps` (scripts/system-deps.sh)"
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def _one(rendered: Rendered, kind: str) -> dict[str, Any]:
    found = rendered.of_kind(kind)
    assert len(found) == 1, f"{kind}: {len(found)} rendered"
    return found[0]


# --- the chart's copies ------------------------------------------------------------------------


def test_the_charts_copies_are_the_sources() -> None:
    result = subprocess.run(
        [sys.executable, str(SYNC), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"run `make helm-files`:\n{result.stdout}{result.stderr}"


def _sync_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """scripts/sync-helm-files.py as a module (its name is not importable)."""
    spec = importlib.util.spec_from_file_location("sync_helm_files", SYNC)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_sync_check_names_every_missing_different_and_stale_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync = _sync_module(monkeypatch)
    (tmp_path / "src").mkdir()
    for name in ("a.yml", "b.yml", "c.yml"):
        (tmp_path / "src" / name).write_text(f"{name}\n", encoding="utf-8")
    monkeypatch.setattr(sync, "ROOT", tmp_path)
    monkeypatch.setattr(sync, "SOURCES", (sync.Source(tmp_path / "src", "*.yml", tmp_path / "to"),))
    assert sync.main(["--check"]) == 1
    assert sync.main([]) == 0
    assert sync.main(["--check"]) == 0
    (tmp_path / "to" / "a.yml").write_text("edited\n", encoding="utf-8")
    (tmp_path / "to" / "b.yml").unlink()
    (tmp_path / "to" / "old.yml").write_text("", encoding="utf-8")
    capsys.readouterr()
    assert sync.main(["--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "differs: to/a.yml (from src/a.yml)",
        "missing: to/b.yml",
        "stale: to/old.yml",
    ]
    assert (tmp_path / "to" / "a.yml").read_text(
        encoding="utf-8"
    ) == "edited\n"  # --check writes nothing
    assert sync.main([]) == 0
    assert sorted(p.name for p in (tmp_path / "to").iterdir()) == ["a.yml", "b.yml", "c.yml"]
    assert (tmp_path / "to" / "a.yml").read_bytes() == b"a.yml\n"


# --- rules -------------------------------------------------------------------------------------


def _extracted_rules(tmp_path: Path) -> Path:
    rule = _one(render("default"), "PrometheusRule")
    path = tmp_path / "extracted-rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}), encoding="utf-8")
    return path


def test_extracted_rules_equal_the_sources(tmp_path: Path) -> None:
    sources = [g for p in sorted(RULES_DIR.glob("*.yml")) for g in load_yaml(p)["groups"]]
    assert load_yaml(_extracted_rules(tmp_path))["groups"] == sources


def test_extracted_rules_pass_promtool_and_the_rule_tests(tmp_path: Path) -> None:
    rules = _extracted_rules(tmp_path)
    check = _tool("promtool", "check", "rules", str(rules))
    assert check.returncode == 0, check.stdout + check.stderr
    names = []
    for source in sorted(RULE_TESTS_DIR.glob("*.yml")):
        tests = load_yaml(source)
        assert all(f.startswith("../rules/") for f in tests["rule_files"]), source.name
        tests["rule_files"] = [str(rules)]
        (tmp_path / source.name).write_text(
            yaml.safe_dump(tests, sort_keys=False, width=1000), encoding="utf-8"
        )
        names.append(source.name)
    assert names
    result = _tool("promtool", "test", "rules", *names, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(names)


# --- dashboards --------------------------------------------------------------------------------


def test_each_dashboard_is_a_byte_copy_with_the_sidecar_label() -> None:
    values = load_yaml(CHART / "values.yaml")
    dashboards = values["metrics"]["dashboards"]
    found = {}
    for config_map in render("default").of_kind("ConfigMap"):
        labels = config_map["metadata"]["labels"]
        if labels.get("app.kubernetes.io/component") != "dashboards":
            continue
        assert labels[dashboards["sidecarLabel"]] == dashboards["sidecarLabelValue"]
        (name, text), *rest = config_map["data"].items()
        assert not rest, config_map["metadata"]["name"]
        found[name] = text.encode("utf-8")
    sources = {p.name: p.read_bytes() for p in sorted(DASHBOARDS_DIR.glob("*.json"))}
    assert found.keys() == sources.keys()
    for name, data in sources.items():
        assert found[name] == data, f"{name} is not a byte copy of its source"


# --- scrapes -----------------------------------------------------------------------------------


def _job(monitor: dict[str, Any]) -> str:
    (endpoint,) = monitor["spec"]["endpoints"]
    jobs = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert len(jobs) == 1 and endpoint["relabelings"][0]["targetLabel"] == "job"
    return str(jobs[0])


def test_service_monitors_scrape_the_charts_services_under_the_compose_job_names() -> None:
    rendered = render("default")
    monitors = {_job(m): m for m in rendered.of_kind("ServiceMonitor")}
    assert monitors.keys() == SCRAPES.keys()
    services = rendered.of_kind("Service")
    for job, (component, port) in SCRAPES.items():
        spec = monitors[job]["spec"]
        selector = spec["selector"]["matchLabels"]
        assert selector == {
            "app.kubernetes.io/name": FULLNAME,
            "app.kubernetes.io/instance": FULLNAME,
            "app.kubernetes.io/component": component,
        }
        chosen = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert [s["metadata"]["name"] for s in chosen] == [f"{FULLNAME}-{component}"], job
        assert port in {p["name"] for p in chosen[0]["spec"]["ports"]}, job
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] == port and endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "15s"
        assert monitors[job]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        # instance stays the target's address: nothing rewrites it
        assert not [r for r in endpoint["relabelings"] if r.get("targetLabel") == "instance"]


def test_the_pushgateway_scrape_keeps_the_compose_allow_lists() -> None:
    monitor = render("default").named("ServiceMonitor", f"{FULLNAME}-pushgateway")
    (endpoint,) = monitor["spec"]["endpoints"]
    job = scrape_jobs(load_yaml(PROMETHEUS_YML))["pushgateway"]
    assert endpoint["honorLabels"] is job["honor_labels"] is True
    expected = [
        {"sourceLabels": r["source_labels"], "regex": r["regex"], "action": r["action"]}
        for r in job["metric_relabel_configs"]
    ]
    assert len(expected) == 2
    assert endpoint["metricRelabelings"] == expected
    auth = endpoint["basicAuth"]
    assert auth["username"] == {"name": f"{FULLNAME}-pushgateway", "key": "username"}
    assert auth["password"] == {"name": f"{FULLNAME}-pushgateway", "key": "password"}
    named = render("default", "--set", "secrets.pushgateway=gateway-auth")
    (endpoint,) = named.named("ServiceMonitor", f"{FULLNAME}-pushgateway")["spec"]["endpoints"]
    assert endpoint["basicAuth"]["password"]["name"] == "gateway-auth"


# --- the CRDs' fields --------------------------------------------------------------------------

METADATA = {"name": "string", "namespace": "string", "labels": "map", "annotations": "map"}


def _schema_path(kind: str, path: str) -> str:
    aliases = ALIASES.get(kind, {})
    changed = True
    while changed:
        changed = False
        for alias, target in aliases.items():
            if path == alias or path.startswith(alias + "."):
                path, changed = target + path[len(alias) :], True
    return path


def _check_value(kind: str, path: str, kind_of: Type, value: Any, errors: list[str]) -> None:
    if isinstance(kind_of, tuple):
        if value not in kind_of:
            errors.append(f"{path}: {value!r} is not one of {kind_of}")
    elif kind_of.startswith("array<"):
        if not isinstance(value, list):
            errors.append(f"{path}: not an array")
            return
        for item in value:
            _check_value(kind, f"{path}[]", kind_of[len("array<") : -1], item, errors)
    elif kind_of == "object":
        _check_object(kind, path, value, errors)
    else:
        accepted = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "int-or-string": isinstance(value, str | int) and not isinstance(value, bool),
            "map": isinstance(value, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
            "any": isinstance(value, dict),
        }
        if not accepted.get(kind_of, False):
            errors.append(f"{path}: {value!r} is not of type {kind_of}")


def _check_object(kind: str, path: str, value: Any, errors: list[str]) -> None:
    node = SCHEMAS[kind].get(_schema_path(kind, path))
    if node is None:
        errors.append(f"{path}: no field list in crd_fields.py")
        return
    if not isinstance(value, dict):
        errors.append(f"{path or '<root>'}: not an object")
        return
    fields, required = node
    errors.extend(f"{path}.{name}: required" for name in required if name not in value)
    for name, item in value.items():
        child = f"{path}.{name}" if path else name
        if name in fields:
            _check_value(kind, child, fields[name], item, errors)
        else:
            errors.append(f"{child}: unknown field")


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """What the CRD of the manifest's kind (crd_fields.py) refuses in it; empty: accepted."""
    kind = manifest["kind"]
    errors = []
    if manifest.get("apiVersion") != API_VERSIONS[kind]:
        errors.append(f"apiVersion: {manifest.get('apiVersion')!r}, not {API_VERSIONS[kind]}")
    metadata = manifest.get("metadata") or {}
    if not metadata.get("name"):
        errors.append("metadata.name: required")
    for name, item in metadata.items():
        if name in METADATA:
            _check_value(kind, f"metadata.{name}", METADATA[name], item, errors)
        else:
            errors.append(f"metadata.{name}: unknown field")
    _check_object(kind, "", {k: v for k, v in manifest.items() if k != "metadata"}, errors)
    return errors


@pytest.mark.parametrize("args", RENDERS, ids=" ".join)
def test_every_operator_object_has_only_its_crds_fields(args: tuple[str, ...]) -> None:
    rendered = render(*args)
    objects = [m for m in rendered.manifests if m["kind"] in API_VERSIONS]
    if rendered.name == "default":
        assert {m["kind"] for m in objects} == API_VERSIONS.keys()
    for manifest in objects:
        assert crd_errors(manifest) == [], f"{manifest['kind']}/{manifest['metadata']['name']}"


def _pushgateway_monitor() -> dict[str, Any]:
    return copy.deepcopy(render("default").named("ServiceMonitor", f"{FULLNAME}-pushgateway"))


def _alertmanager_config() -> dict[str, Any]:
    return copy.deepcopy(_one(render("default", *WEBHOOK), "AlertmanagerConfig"))


def test_the_field_check_refuses_a_misspelt_field() -> None:
    monitor = _pushgateway_monitor()
    endpoint = monitor["spec"]["endpoints"][0]
    endpoint["honorLabel"] = endpoint.pop("honorLabels")
    assert crd_errors(monitor) == ["spec.endpoints[].honorLabel: unknown field"]


def test_the_field_check_refuses_missing_fields_wrong_types_and_values() -> None:
    monitor = _pushgateway_monitor()
    del monitor["spec"]["selector"]
    monitor["spec"]["endpoints"][0]["honorLabels"] = "true"
    monitor["spec"]["endpoints"][0]["relabelings"][0]["action"] = "rename"
    monitor["metadata"]["label"] = {}
    assert sorted(crd_errors(monitor)) == [
        "metadata.label: unknown field",
        "spec.endpoints[].honorLabels: 'true' is not of type boolean",
        "spec.endpoints[].relabelings[].action: 'rename' is not one of "
        + str(SCHEMAS["ServiceMonitor"]["spec.endpoints[].relabelings[]"][0]["action"]),
        "spec.selector: required",
    ]


def test_the_field_check_reads_sub_routes_as_routes() -> None:
    """The CRD leaves sub-routes unchecked; the operator would drop a misspelt field there."""
    config = _alertmanager_config()
    config["spec"]["route"]["routes"][0]["group_by"] = ["alertname"]
    config["spec"]["route"]["routes"][1]["matchers"][0]["matchType"] = "=="
    assert crd_errors(config) == [
        "spec.route.routes[].group_by: unknown field",
        "spec.route.routes[].matchers[].matchType: '==' is not one of ('!=', '=', '=~', '!~')",
    ]


# --- alert routes ------------------------------------------------------------------------------

_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')
_ROUTE_KEYS = {"receiver": "receiver", "group_by": "groupBy", "group_wait": "groupWait",
               "group_interval": "groupInterval", "repeat_interval": "repeatInterval",
               "continue": "continue"}  # fmt: skip


def _matchers(matchers: list[str]) -> list[dict[str, str]]:
    parsed = [_MATCHER.match(m) for m in matchers]
    assert all(parsed), matchers
    return [{"name": m[1], "matchType": m[2], "value": m[3]} for m in parsed if m]


def _route(route: dict[str, Any]) -> dict[str, Any]:
    """alertmanager.yml's route as an AlertmanagerConfig writes it."""
    assert set(route) <= {*_ROUTE_KEYS, "matchers", "routes"}, route
    out = {_ROUTE_KEYS[k]: v for k, v in route.items() if k in _ROUTE_KEYS}
    if "matchers" in route:
        out["matchers"] = _matchers(route["matchers"])
    if "routes" in route:
        out["routes"] = [_route(r) for r in route["routes"]]
    return out


@pytest.mark.parametrize("webhook", [True, False], ids=["webhook", "no-webhook"])
def test_routes_and_inhibitions_are_alertmanager_ymls(webhook: bool) -> None:
    config = load_yaml(ALERTMANAGER_YML)
    spec = _one(render("default", *(WEBHOOK if webhook else ())), "AlertmanagerConfig")["spec"]
    expected = _route(config["route"])
    if not webhook:  # no receiver to route to: the alerts still go to people (`continue`)
        expected["routes"] = [r for r in expected["routes"] if r["receiver"] != "retrain-webhook"]
    assert spec["route"] == expected
    assert spec["inhibitRules"] == [
        {
            "sourceMatch": _matchers(rule["source_matchers"]),
            "targetMatch": _matchers(rule["target_matchers"]),
            "equal": rule["equal"],
        }
        for rule in config["inhibit_rules"]
    ]
    names = [r["name"] for r in config["receivers"] if webhook or r["name"] != "retrain-webhook"]
    assert [r["name"] for r in spec["receivers"]] == names


def _secret_key(credentials_file: str) -> str:
    """alertmanager.yml's token files are named as the Secret's keys."""
    return Path(credentials_file).name


def _rendered(tmp_path: Path, text: str, *, templates: Path) -> str:
    """An Alertmanager template text rendered by amtool over firing and resolved alerts."""
    alert = {
        "labels": {"alertname": "RakutenApiDown", "severity": "critical", "job": "serve",
                   "component": "serve", "instance": "10.0.0.2:8000"},
        "annotations": {"summary": "down", "description": "no scrape", "runbook_url": "r",
                        "dashboard_url": "/d/rakuten-api"},
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
    }  # fmt: skip
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps({
            "receiver": "people", "status": "firing", "externalURL": "http://am",
            "alerts": [{**alert, "status": "firing"}, {**alert, "status": "resolved"}],
            "groupLabels": {"alertname": "RakutenApiDown"},
            "commonLabels": {"alertname": "RakutenApiDown", "severity": "critical", "job": "serve"},
            "commonAnnotations": {},
        }),
        encoding="utf-8",
    )  # fmt: skip
    result = _tool("amtool", "template", "render", f"--template.glob={templates}",
                   f"--template.text={text}", f"--template.data={data}")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_receivers_are_alertmanager_ymls(tmp_path: Path) -> None:
    config = load_yaml(ALERTMANAGER_YML)
    spec = _one(render("default", *WEBHOOK), "AlertmanagerConfig")["spec"]
    secret = f"{FULLNAME}-alertmanager"
    empty = tmp_path / "none.tmpl"
    empty.write_text("", encoding="utf-8")
    chart = {r["name"]: r for r in spec["receivers"]}
    for receiver in config["receivers"]:
        got = chart[receiver["name"]]
        for source, config_key, chart_key in [
            (s, "slack_configs", "slackConfigs") for s in receiver.get("slack_configs", [])
        ] + [(w, "webhook_configs", "webhookConfigs") for w in receiver.get("webhook_configs", [])]:
            (target,) = got[chart_key]
            assert target["sendResolved"] == source["send_resolved"]
            auth = source["http_config"]["authorization"]
            assert target["httpConfig"]["authorization"] == {
                "type": auth["type"],
                "credentials": {"name": secret, "key": _secret_key(auth["credentials_file"])},
            }
            if config_key == "webhook_configs":
                url, want = urlsplit(target["url"]), urlsplit(source["url"])
                # Alertmanager is in another namespace: the Service's namespaced name
                assert url.hostname == f"{FULLNAME}-{want.hostname}.{NAMESPACE}.svc"
                assert (url.port, url.path) == (want.port, want.path)
                continue
            # the monitor's URL is in the Secret (the CRD's apiURL is a SecretKeySelector)
            path = urlsplit(source["api_url"]).path.strip("/")
            assert target["apiURL"] == {"name": secret, "key": f"{path}_url"}
            assert target["username"] == source["username"]
            text_fields = {"title", "text", "color"} & source.keys()
            assert text_fields == {"title", "text", "color"} & target.keys()
            for field in sorted(text_fields):
                assert _rendered(tmp_path, target[field], templates=empty) == _rendered(
                    tmp_path, source[field], templates=TEMPLATES
                ), f"{receiver['name']}.{field}"


def test_the_alertmanager_secret_name_comes_from_the_values() -> None:
    config = _one(render("default", "--set", "secrets.alertmanager=am-keys"), "AlertmanagerConfig")
    (people, *_) = config["spec"]["receivers"]
    assert people["slackConfigs"][0]["apiURL"]["name"] == "am-keys"
    credentials = people["slackConfigs"][0]["httpConfig"]["authorization"]["credentials"]
    assert credentials["name"] == "am-keys"


# --- kube-prometheus-stack ---------------------------------------------------------------------


def test_the_kube_prometheus_stack_values_pick_up_the_charts_objects() -> None:
    stack = load_yaml(REPO_ROOT / "deploy" / "helm" / "kube-prometheus-stack-values.yaml")
    metrics = load_yaml(CHART / "values.yaml")["metrics"]
    labels = {"matchLabels": metrics["selectorLabels"]}
    prometheus = stack["prometheus"]["prometheusSpec"]
    assert prometheus["serviceMonitorSelector"] == prometheus["ruleSelector"] == labels
    alertmanager = stack["alertmanager"]["alertmanagerSpec"]
    assert alertmanager["alertmanagerConfigSelector"] == labels
    assert alertmanager["alertmanagerConfigMatcherStrategy"] == {"type": "None"}
    assert stack["alertmanager"]["serviceMonitor"]["relabelings"] == [
        {"targetLabel": "job", "replacement": "alertmanager", "action": "replace"}
    ]
    sidecar = stack["grafana"]["sidecar"]
    (datasource,) = load_yaml(DATASOURCES_DIR / "prometheus.yml")["datasources"]
    assert sidecar["datasources"]["uid"] == datasource["uid"]
    dashboards = metrics["dashboards"]
    assert sidecar["dashboards"]["label"] == dashboards["sidecarLabel"]
    assert sidecar["dashboards"]["labelValue"] == dashboards["sidecarLabelValue"]
