"""The fields of the Prometheus Operator's CRDs that the chart's objects use, as data.

Vendored from the openAPIV3Schema of the CRDs of prometheus-operator v0.93.0
(example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules,
alertmanagerconfigs}.yaml at tag v0.93.0; served versions: ServiceMonitor and PrometheusRule
monitoring.coreos.com/v1, AlertmanagerConfig monitoring.coreos.com/v1alpha1), not the whole CRDs:
only the objects the rendered chart contains, each with every field the CRD documents there
(the fields used and their siblings) and its required ones. tests/unit/deploy/
test_chart_monitoring.py checks the rendered objects against them: an unknown field, a missing
required one or a value of the wrong type fails, as the API server (or, for what the CRD leaves
unchecked, the operator) would refuse or drop it.

A path is the fields from the object's root joined by dots, ``[]`` for an array's items. A type is
the CRD's (string, boolean, integer), ``int-or-string``, ``map`` (string keys and values:
labels, annotations, matchLabels), ``object`` or ``array<...>`` (an object's own fields are the
entry of its path), or a tuple: the values an enum allows. To add a field: read it in the CRD of
the same operator version and add it here with its siblings; metadata is checked by the test.
"""

from __future__ import annotations

from typing import Final

OPERATOR_VERSION: Final = "v0.93.0"

API_VERSIONS: Final = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "AlertmanagerConfig": "monitoring.coreos.com/v1alpha1",
}

# An AlertmanagerConfig's sub-routes are free JSON in the CRD (x-kubernetes-preserve-unknown-
# fields): the API server checks nothing there, and the operator reads each as a route, ignoring
# what it does not know. They are checked as the top route.
ALIASES: Final = {"AlertmanagerConfig": {"spec.route.routes[]": "spec.route"}}

Type = str | tuple[str, ...]
# path -> (field -> type, required fields)
Node = tuple[dict[str, Type], tuple[str, ...]]

# An endpoint's relabelings and metricRelabelings: the same RelabelConfig fields
RELABEL_CONFIG: Final[Node] = (
    {
        "action": (
            "replace",
            "Replace",
            "keep",
            "Keep",
            "drop",
            "Drop",
            "hashmod",
            "HashMod",
            "labelmap",
            "LabelMap",
            "labeldrop",
            "LabelDrop",
            "labelkeep",
            "LabelKeep",
            "lowercase",
            "Lowercase",
            "uppercase",
            "Uppercase",
            "keepequal",
            "KeepEqual",
            "dropequal",
            "DropEqual",
        ),
        "modulus": "integer",
        "regex": "string",
        "replacement": "string",
        "separator": "string",
        "sourceLabels": "array<string>",
        "targetLabel": "string",
    },
    (),
)

SCHEMAS: Final[dict[str, dict[str, Node]]] = {
    "AlertmanagerConfig": {
        "": ({"apiVersion": "string", "kind": "string", "spec": "object"}, ("spec",)),
        "spec": (
            {
                "inhibitRules": "array<object>",
                "muteTimeIntervals": "array<object>",
                "receivers": "array<object>",
                "route": "object",
            },
            (),
        ),
        "spec.route": (
            {
                "activeTimeIntervals": "array<string>",
                "continue": "boolean",
                "groupBy": "array<string>",
                "groupInterval": "string",
                "groupWait": "string",
                "matchers": "array<object>",
                "muteTimeIntervals": "array<string>",
                "receiver": "string",
                "repeatInterval": "string",
                "routes": "array<object>",
            },
            (),
        ),
        "spec.route.matchers[]": (
            {
                "matchType": ("!=", "=", "=~", "!~"),
                "name": "string",
                "regex": "boolean",
                "value": "string",
            },
            ("name",),
        ),
        "spec.receivers[]": (
            {
                "discordConfigs": "array<object>",
                "emailConfigs": "array<object>",
                "msteamsConfigs": "array<object>",
                "msteamsv2Configs": "array<object>",
                "name": "string",
                "opsgenieConfigs": "array<object>",
                "pagerdutyConfigs": "array<object>",
                "pushoverConfigs": "array<object>",
                "rocketchatConfigs": "array<object>",
                "slackConfigs": "array<object>",
                "snsConfigs": "array<object>",
                "telegramConfigs": "array<object>",
                "victoropsConfigs": "array<object>",
                "webexConfigs": "array<object>",
                "webhookConfigs": "array<object>",
                "wechatConfigs": "array<object>",
            },
            ("name",),
        ),
        "spec.receivers[].slackConfigs[]": (
            {
                "actions": "array<object>",
                "apiURL": "object",
                "callbackId": "string",
                "channel": "string",
                "color": "string",
                "fallback": "string",
                "fields": "array<object>",
                "footer": "string",
                "httpConfig": "object",
                "iconEmoji": "string",
                "iconURL": "string",
                "imageURL": "string",
                "linkNames": "boolean",
                "messageText": "string",
                "mrkdwnIn": "array<string>",
                "pretext": "string",
                "sendResolved": "boolean",
                "shortFields": "boolean",
                "text": "string",
                "thumbURL": "string",
                "timeout": "string",
                "title": "string",
                "titleLink": "string",
                "updateMessage": "boolean",
                "username": "string",
            },
            (),
        ),
        "spec.receivers[].slackConfigs[].apiURL": (
            {"key": "string", "name": "string", "optional": "boolean"},
            ("key",),
        ),
        "spec.receivers[].slackConfigs[].httpConfig": (
            {
                "authorization": "object",
                "basicAuth": "object",
                "bearerTokenSecret": "object",
                "enableHttp2": "boolean",
                "followRedirects": "boolean",
                "noProxy": "string",
                "oauth2": "object",
                "proxyConnectHeader": "map",
                "proxyFromEnvironment": "boolean",
                "proxyURL": "string",
                "proxyUrl": "string",
                "tlsConfig": "object",
            },
            (),
        ),
        "spec.receivers[].slackConfigs[].httpConfig.authorization": (
            {"credentials": "object", "type": "string"},
            (),
        ),
        "spec.receivers[].slackConfigs[].httpConfig.authorization.credentials": (
            {"key": "string", "name": "string", "optional": "boolean"},
            ("key",),
        ),
        "spec.inhibitRules[]": (
            {
                "equal": "array<string>",
                "sourceMatch": "array<object>",
                "targetMatch": "array<object>",
            },
            (),
        ),
        "spec.inhibitRules[].sourceMatch[]": (
            {
                "matchType": ("!=", "=", "=~", "!~"),
                "name": "string",
                "regex": "boolean",
                "value": "string",
            },
            ("name",),
        ),
        "spec.inhibitRules[].targetMatch[]": (
            {
                "matchType": ("!=", "=", "=~", "!~"),
                "name": "string",
                "regex": "boolean",
                "value": "string",
            },
            ("name",),
        ),
        "spec.receivers[].webhookConfigs[]": (
            {
                "httpConfig": "object",
                "maxAlerts": "integer",
                "payload": "string",
                "sendResolved": "boolean",
                "timeout": "string",
                "url": "string",
                "urlSecret": "object",
            },
            (),
        ),
        "spec.receivers[].webhookConfigs[].httpConfig": (
            {
                "authorization": "object",
                "basicAuth": "object",
                "bearerTokenSecret": "object",
                "enableHttp2": "boolean",
                "followRedirects": "boolean",
                "noProxy": "string",
                "oauth2": "object",
                "proxyConnectHeader": "map",
                "proxyFromEnvironment": "boolean",
                "proxyURL": "string",
                "proxyUrl": "string",
                "tlsConfig": "object",
            },
            (),
        ),
        "spec.receivers[].webhookConfigs[].httpConfig.authorization": (
            {"credentials": "object", "type": "string"},
            (),
        ),
        "spec.receivers[].webhookConfigs[].httpConfig.authorization.credentials": (
            {"key": "string", "name": "string", "optional": "boolean"},
            ("key",),
        ),
    },
    "PrometheusRule": {
        "": ({"apiVersion": "string", "kind": "string", "spec": "object"}, ("spec",)),
        "spec": ({"groups": "array<object>"}, ()),
        "spec.groups[]": (
            {
                "interval": "string",
                "labels": "map",
                "limit": "integer",
                "name": "string",
                "partial_response_strategy": "string",
                "query_offset": "string",
                "rules": "array<object>",
            },
            ("name",),
        ),
        "spec.groups[].rules[]": (
            {
                "alert": "string",
                "annotations": "map",
                "expr": "int-or-string",
                "for": "string",
                "keep_firing_for": "string",
                "labels": "map",
                "record": "string",
            },
            ("expr",),
        ),
    },
    "ServiceMonitor": {
        "": ({"apiVersion": "string", "kind": "string", "spec": "object"}, ("spec",)),
        "spec": (
            {
                "attachMetadata": "object",
                "bodySizeLimit": "string",
                "convertClassicHistogramsToNHCB": "boolean",
                "endpoints": "array<object>",
                "fallbackScrapeProtocol": (
                    "PrometheusProto",
                    "OpenMetricsText0.0.1",
                    "OpenMetricsText1.0.0",
                    "PrometheusText0.0.4",
                    "PrometheusText1.0.0",
                ),
                "jobLabel": "string",
                "keepDroppedTargets": "integer",
                "labelLimit": "integer",
                "labelNameLengthLimit": "integer",
                "labelValueLengthLimit": "integer",
                "namespaceSelector": "object",
                "nativeHistogramBucketLimit": "integer",
                "nativeHistogramMinBucketFactor": "int-or-string",
                "podTargetLabels": "array<string>",
                "sampleLimit": "integer",
                "scrapeClass": "string",
                "scrapeClassicHistograms": "boolean",
                "scrapeNativeHistograms": "boolean",
                "scrapeProtocols": "array<string>",
                "selector": "object",
                "selectorMechanism": ("RelabelConfig", "RoleSelector"),
                "serviceDiscoveryRole": ("Endpoints", "EndpointSlice"),
                "targetLabels": "array<string>",
                "targetLimit": "integer",
            },
            ("endpoints", "selector"),
        ),
        "spec.selector": ({"matchExpressions": "array<object>", "matchLabels": "map"}, ()),
        "spec.namespaceSelector": ({"any": "boolean", "matchNames": "array<string>"}, ()),
        "spec.endpoints[]": (
            {
                "authorization": "object",
                "basicAuth": "object",
                "bearerTokenFile": "string",
                "bearerTokenSecret": "object",
                "enableHttp2": "boolean",
                "filterRunning": "boolean",
                "followRedirects": "boolean",
                "honorLabels": "boolean",
                "honorTimestamps": "boolean",
                "interval": "string",
                "metricRelabelings": "array<object>",
                "noProxy": "string",
                "oauth2": "object",
                "params": "map",
                "path": "string",
                "port": "string",
                "proxyConnectHeader": "map",
                "proxyFromEnvironment": "boolean",
                "proxyUrl": "string",
                "relabelings": "array<object>",
                "scheme": ("http", "https", "HTTP", "HTTPS"),
                "scrapeTimeout": "string",
                "targetPort": "int-or-string",
                "tlsConfig": "object",
                "trackTimestampsStaleness": "boolean",
            },
            (),
        ),
        "spec.endpoints[].relabelings[]": RELABEL_CONFIG,
        "spec.endpoints[].basicAuth": ({"password": "object", "username": "object"}, ()),
        "spec.endpoints[].basicAuth.username": (
            {"key": "string", "name": "string", "optional": "boolean"},
            ("key",),
        ),
        "spec.endpoints[].basicAuth.password": (
            {"key": "string", "name": "string", "optional": "boolean"},
            ("key",),
        ),
        "spec.endpoints[].metricRelabelings[]": RELABEL_CONFIG,
    },
}
