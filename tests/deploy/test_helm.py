"""The Helm chart (helm/perpledger): `helm lint`, `helm template`, kubeconform against the
Kubernetes schemas (strict: unknown fields are errors), and the workers' settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import CHART, MONITORING, ROOT, run
from tests.deploy.names import SINK_REQUIRED, WORKER_REQUIRED, sink_settings, worker_settings

KUBERNETES_VERSION = "1.33.0"  # the schema set scripts/tools.sh installs
VALUES = ["--set", "secrets.internalKey=" + "i" * 32, "--set", "secrets.jwtSecret=" + "j" * 32,
          "--set", "sink.clickhouseUrl=http://ledger:pw@clickhouse:8123/perpledger"]
EVERYTHING = [*VALUES, "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
              "--set", "grafanaDashboard.enabled=true"]
CRD_KINDS = "ServiceMonitor,PrometheusRule"  # prometheus-operator's: no schema among Kubernetes' own


def _template(tools: Path, *values: str) -> str:
    return run(tools / "helm", "template", "ledger", str(CHART), "--namespace", "prod",
               "--kube-version", KUBERNETES_VERSION, *values)


def _by_kind(manifests: str) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all(manifests):
        if doc:
            kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


@pytest.fixture(scope="module")
def rendered(tools: Path) -> str:
    return _template(tools, *EVERYTHING)


def test_lint(tools: Path) -> None:
    run(tools / "helm", "lint", "--strict", str(CHART), *EVERYTHING)


@pytest.mark.parametrize("values", [EVERYTHING, VALUES, [*VALUES, "--set", "sink.enabled=false"],
                                    ["--set", "secrets.existingSecret=s", "--set", "sink.existingSecret=c"]],
                         ids=["everything", "defaults", "no-sink", "existing-secrets"])
def test_rendered_manifests_match_the_kubernetes_schemas(tools: Path, values: list[str]) -> None:
    schemas = ROOT / ".cache/tools/k8s-schemas"
    out = run(tools / "kubeconform", "-strict", "-summary", "-kubernetes-version", KUBERNETES_VERSION,
              "-schema-location", f"{schemas}/{{{{ .NormalizedKubernetesVersion }}}}-standalone{{{{ .StrictSuffix }}}}"
              "/{{ .ResourceKind }}{{ .KindSuffix }}.json", "-skip", CRD_KINDS, "-",
              stdin=_template(tools, *values))
    assert "Invalid: 0, Errors: 0" in out, out


def test_secrets_are_required(tools: Path) -> None:
    with pytest.raises(AssertionError, match=r"secrets\.internalKey"):
        _template(tools, "--set", "sink.enabled=false")
    with pytest.raises(AssertionError, match=r"sink\.clickhouseUrl"):
        _template(tools, "--set", "secrets.existingSecret=s")


def _component(manifests: list[dict], component: str) -> dict:
    (manifest,) = (m for m in manifests if m["metadata"]["labels"]["app.kubernetes.io/component"] == component)
    return manifest


def _env(container: dict, configmaps: dict[str, dict[str, str]]) -> dict[str, str | dict]:
    """A container's environment: its ConfigMaps' values, then its own entries (value, or valueFrom)."""
    env: dict[str, str | dict] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
    env.update({e["name"]: e["value"] if "value" in e else e["valueFrom"] for e in container.get("env", [])})
    return env


def test_workers_are_a_statefulset_with_volumes_identity_and_probes(rendered: str) -> None:
    kinds = _by_kind(rendered)
    statefulset = _component(kinds["StatefulSet"], "worker")
    spec = statefulset["spec"]
    assert spec["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    headless = next(s for s in kinds["Service"] if s["spec"].get("clusterIP") == "None")
    assert spec["serviceName"] == headless["metadata"]["name"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PERPLEDGER_CANONICAL_URL"] == f"http://$(POD_NAME).{headless['metadata']['name']}.prod.svc:6066"
    assert {"mountPath": "/data", "name": "data"} in container["volumeMounts"]
    (pdb,) = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_worker_and_sink_settings_are_names_the_code_reads(rendered: str) -> None:
    kinds = _by_kind(rendered)
    configmaps = {c["metadata"]["name"]: set(c.get("data", {})) for c in kinds["ConfigMap"]}
    secrets = {s["metadata"]["name"]: set(s.get("data", {})) for s in kinds["Secret"]}
    pods = {w["spec"]["template"]["spec"]["containers"][0]["args"][0]: w["spec"]["template"]["spec"]["containers"][0]
            for w in kinds["StatefulSet"] + kinds.get("Deployment", [])}
    allowed = {"worker": (worker_settings(), WORKER_REQUIRED), "sink": (sink_settings(), SINK_REQUIRED)}
    assert set(pods) == set(allowed)
    for command, container in pods.items():
        env = {e["name"] for e in container.get("env", [])} - {"POD_NAME"}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env |= configmaps[source["configMapRef"]["name"]]
            else:
                env |= secrets[source["secretRef"]["name"]]
        known, required = allowed[command]
        assert env <= known, (command, env - known)
        assert required <= env, (command, required - env)


def test_workers_and_sink_listen_where_probes_and_prometheus_reach_them(rendered: str) -> None:
    """Their web servers bind 127.0.0.1 unless told otherwise; probes and scrapes come to the pod's IP."""
    kinds = _by_kind(rendered)
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in kinds["ConfigMap"]}
    for component in ("worker", "sink"):
        (container,) = _component(kinds["StatefulSet"], component)["spec"]["template"]["spec"]["containers"]
        assert _env(container, configmaps).get("PERPLEDGER_WEB_HOST") == "0.0.0.0", component


def test_sinks_are_static_group_members_named_after_their_stable_pods(rendered: str) -> None:
    """A StatefulSet's pod keeps its name when it is restarted or rolled, so it rejoins as the same member."""
    kinds = _by_kind(rendered)
    sink = _component(kinds["StatefulSet"], "sink")
    (container,) = sink["spec"]["template"]["spec"]["containers"]
    assert _env(container, {})["PERPLEDGER_SINK_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert _env(container, {})["PERPLEDGER_SINK_WEB_PORT"] == str(container["ports"][0]["containerPort"])


def test_monitoring_resources_carry_the_rules_and_the_dashboard(rendered: str) -> None:
    kinds = _by_kind(rendered)
    (rule,) = kinds["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((MONITORING / "prometheus/alerts.yml").read_text())
    (monitor,) = kinds["ServiceMonitor"]
    jobs = {s["metadata"]["labels"].get("perpledger.io/job") for s in kinds["Service"]}
    assert {"perpledger-worker", "perpledger-sink"} <= jobs  # the job names the alert rules use
    assert monitor["spec"]["jobLabel"] == "perpledger.io/job"
    dashboard = next(c for c in kinds["ConfigMap"] if "perpledger.json" in c.get("data", {}))
    assert dashboard["data"]["perpledger.json"] == (MONITORING / "grafana/dashboards/perpledger.json").read_text()
