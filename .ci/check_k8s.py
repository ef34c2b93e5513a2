"""Kubernetes checks beyond the cross-references of check_deploy.py: schema validation of every
object, and the rules of a well-run deployment (docs/operations.md): the HPA owns the replica
count, disruption and spread policies, the main file rolled by content and the routing file
reloaded live, network policies, the service account and the namespace's pod security.

`check_deploy.py` calls these with its parsed documents; failures go through its `check`."""

from pathlib import Path

import yaml

# The oldest Kubernetes the manifests support (deployment.yaml: the preStop sleep action) and
# the newest the validator knows.
MIN_VERSION = "1.30.0"
# Kinds of the Prometheus Operator: no schema ships with kubernetes-validate; the cross checks
# below and `promtool` (for the rules) cover them.
OPERATOR_GROUP = "monitoring.coreos.com/"


def generated_configmaps(deploy):
    """The ConfigMaps kustomize's configMapGenerator makes, as (kustomization, object); each
    carries `generated: True` in a side table, not in the object."""
    out = []
    for k in sorted(deploy.rglob("kustomization.yaml")):
        spec = yaml.safe_load(k.read_text()) or {}
        for g in spec.get("configMapGenerator", []):
            data = {}
            for f in g.get("files", []):
                key, _, path = f.rpartition("=") if "=" in f else (Path(f).name, "", f)
                data[key] = (k.parent / path).read_text()
            doc = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": g["name"], "labels": g.get("options", {}).get("labels", {})},
                   "data": data}
            hashed = not g.get("options", {}).get("disableNameSuffixHash", False)
            out.append((k, doc, hashed))
    return out


def validate_schemas(docs, check):
    """Every Kubernetes object against the API schemas of MIN_VERSION and the newest, strictly
    (an unknown or misspelt field fails)."""
    import kubernetes_validate

    versions = [MIN_VERSION, kubernetes_validate.latest_version()]
    for f, d in docs:
        if "kind" not in d or "apiVersion" not in d:
            continue
        name = f"{f}: {d['kind']} {d.get('metadata', {}).get('name', '')}"
        if d["kind"] == "Kustomization":
            allowed = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}
            check(set(d) <= allowed, f"{name}: only the kustomize fields {sorted(allowed)}", f"{sorted(set(d) - allowed)}")
            continue
        if d["apiVersion"].startswith(OPERATOR_GROUP):
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(d, v, strict=True)
                ok = True
                why = ""
            except kubernetes_validate.ValidationError as e:
                ok, why = False, f"{'.'.join(str(p) for p in e.path)}: {e.message}"
            except kubernetes_validate.SchemaNotFoundError as e:
                ok, why = False, str(e)
            check(ok, f"{name}: valid against the Kubernetes {v} schema", why)


def _select(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_rules(docs, generated, dep, check, admin_port):
    """The deployment rules, on the proxy Deployment `dep` and every other object."""
    k8s = [d for _, d in docs if "kind" in d]
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    hpas = [h for h in k8s if h["kind"] == "HorizontalPodAutoscaler"
            and h["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]]
    if hpas:
        check("replicas" not in spec, "the Deployment has no `replicas` while an HPA owns the count",
              "every apply would reset the count")
    for p in [d for d in k8s if d["kind"] == "PodDisruptionBudget"]:
        check(p["spec"].get("maxUnavailable") == 1 and "minAvailable" not in p["spec"],
              f"PDB {p['metadata']['name']}: maxUnavailable: 1")
    spread = pod.get("topologySpreadConstraints", [])
    check(bool(spread) and all(c.get("nodeTaintsPolicy") == "Honor" for c in spread),
          "every topology spread constraint has nodeTaintsPolicy: Honor",
          "tainted nodes would count as empty domains and leave scale-out pods Pending")

    # The main file rolls the pods when it changes; the routing file reloads in place.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    by_name = {d["metadata"]["name"]: (hashed, d) for _, d, hashed in generated}
    cms = [v["configMap"]["name"] for v in volumes.values() if "configMap" in v]
    main = [n for n in cms if n in by_name and "portcullis.toml" in by_name[n][1]["data"]]
    annotated = any(k.startswith("checksum/") for k in dep["spec"]["template"]["metadata"].get("annotations", {}))
    check(bool(main) and (by_name[main[0]][0] or annotated),
          "the main file comes from a generated, content-hashed ConfigMap (a change rolls the pods)")
    plain = [d for d in k8s if d["kind"] == "ConfigMap" and d["metadata"]["name"] in cms
             and "routes.toml" in d.get("data", {})]
    check(bool(plain), "the routing file is a plain ConfigMap of its own (edits reload without a rollout)")

    # Identity and namespace.
    sa = pod.get("serviceAccountName")
    sas = {d["metadata"]["name"]: d for d in k8s if d["kind"] == "ServiceAccount"}
    if check(sa in sas, f"the pods run as a ServiceAccount of their own ({sa})"):
        ann = sas[sa]["metadata"].get("annotations", {})
        check("azure.workload.identity/client-id" in ann, f"ServiceAccount {sa} is annotated for workload identity")
    for ns in [d for d in k8s if d["kind"] == "Namespace"]:
        check(ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") == "restricted",
              f"Namespace {ns['metadata']['name']} enforces the restricted pod security standard")

    # Network policies.
    pols = [d for d in k8s if d["kind"] == "NetworkPolicy"]
    mine = [p for p in pols if _select(p["spec"]["podSelector"].get("matchLabels", {}), labels)]
    if check(bool(mine), "a NetworkPolicy selects the proxy pods"):
        for p in mine:
            for rule in p["spec"].get("ingress", []):
                ports = [x.get("port") for x in rule.get("ports", [])]
                opens_admin = not ports or admin_port in ports or "admin" in ports
                if opens_admin:
                    sources = rule.get("from", [])
                    check(bool(sources) and all(set(s) == {"namespaceSelector"} for s in sources),
                          f"NetworkPolicy {p['metadata']['name']}: the admin port only from a monitoring namespace",
                          f"rule {rule}")
    proxy_only = lambda p: all(  # noqa: E731
        bool(r.get("from")) and all(_select(s.get("podSelector", {}).get("matchLabels", {}), labels)
                                    for s in r["from"]) for r in p["spec"].get("ingress", []))
    redis = [p for p in pols if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "redis"]
    check(bool(redis) and all(proxy_only(p) for p in redis), "Redis admits only the proxy pods (NetworkPolicy)")
    upstream = [p for p in pols if p not in mine and p not in redis]
    check(bool(upstream) and all(proxy_only(p) for p in upstream),
          "an upstream NetworkPolicy admits only the proxy pods")

    # Services on the admin port are cluster-internal; the ServiceMonitor finds one.
    services = [d for d in k8s if d["kind"] == "Service" and _select(d["spec"].get("selector", {}), labels)]
    for s in services:
        admin = [p for p in s["spec"]["ports"] if p.get("targetPort") in (admin_port, "admin") or p["port"] == admin_port]
        if admin:
            check(s["spec"].get("type", "ClusterIP") == "ClusterIP",
                  f"Service {s['metadata']['name']} carries the admin port only inside the cluster (ClusterIP)")
    for m in [d for d in k8s if d["kind"] == "ServiceMonitor"]:
        sel = m["spec"]["selector"].get("matchLabels", {})
        targets = [s for s in services if _select(sel, s["metadata"].get("labels", {}))]
        ports = {p.get("name") for s in targets for p in s["spec"]["ports"]
                 if p.get("targetPort") in (admin_port, "admin")}
        check(bool(targets) and all(e.get("port") in ports and e.get("path") == "/metrics" for e in m["spec"]["endpoints"]),
              f"ServiceMonitor {m['metadata']['name']} scrapes /metrics on the admin port of a Service of the pods")


def check_rules_files(deploy, check):
    """The alert rules load in promtool, pass their unit tests, and the PrometheusRule holds
    the same groups as deploy/prometheus/alerts.yaml."""
    import subprocess

    rules = deploy / "prometheus" / "alerts.yaml"
    for args in (["check", "rules", rules.name], ["test", "rules", "alerts.test.yaml"]):
        r = subprocess.run(["promtool", *args], cwd=rules.parent, capture_output=True, text=True)
        check(r.returncode == 0, f"promtool {' '.join(args)}", (r.stdout + r.stderr).strip())
    crd = yaml.safe_load((deploy / "kubernetes" / "monitoring" / "prometheusrule.yaml").read_text())
    check(crd.get("spec") == yaml.safe_load(rules.read_text()),
          "the PrometheusRule's groups are deploy/prometheus/alerts.yaml's")


def check_dashboard(deploy, check):
    """The Grafana dashboard parses, every panel reads the dashboard's data source variable,
    and panel IDs are unique. (That each metric it queries exists is a Rust test:
    tests/dashboard.rs, against a real /metrics.)"""
    import json

    for f in sorted((deploy / "grafana").glob("*.json")):
        d = json.loads(f.read_text())
        panels = d.get("panels", [])
        ids = [p["id"] for p in panels]
        check(len(ids) == len(set(ids)), f"{f.name}: panel IDs are unique")
        queried = [p for p in panels if p.get("targets")]
        check(bool(queried) and all(p["datasource"]["uid"] == "${datasource}" for p in queried),
              f"{f.name}: {len(queried)} panels, each on the ${{datasource}} variable")
