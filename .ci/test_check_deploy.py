#!/usr/bin/env python3
"""Tests of .ci/check_deploy.py: each check passes on what the repository ships and fails on a
broken copy of it (one break per check, as subtests). Run by .ci/check-deploy (`python3 .ci/test_check_deploy.py`)."""

import copy
import io
import sys
import tempfile
import unittest
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_deploy as cd  # noqa: E402

SHIPPED_DOCKERFILE = cd.DOCKERFILE.read_text()


def failures_of(f, *args):
    """Runs one check function quietly; returns the failure messages it recorded."""
    cd.failures.clear()
    with redirect_stdout(io.StringIO()):
        f(*args)
    found = list(cd.failures)
    cd.failures.clear()
    return found


class Dockerfile(unittest.TestCase):
    def lint(self, text):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "Dockerfile"
            path.write_text(text)
            saved, cd.DOCKERFILE = cd.DOCKERFILE, path
            try:
                return failures_of(cd.lint_dockerfile)
            finally:
                cd.DOCKERFILE = saved

    def assert_fails(self, text, fragment):
        found = self.lint(text)
        self.assertTrue(any(fragment in f for f in found), f"no failure naming {fragment!r}: {found}")

    def test_the_shipped_dockerfile_passes(self):
        self.assertEqual(self.lint(SHIPPED_DOCKERFILE), [])

    def test_a_build_with_the_demo_feature_fails(self):
        self.assertIn("--no-default-features", SHIPPED_DOCKERFILE)
        self.assert_fails(SHIPPED_DOCKERFILE.replace(" --no-default-features", ""), "demo")

    def test_an_unlocked_build_fails(self):
        self.assert_fails(SHIPPED_DOCKERFILE.replace("cargo build --release --locked", "cargo build --release"),
                          "--locked")

    def test_a_latest_tag_fails(self):
        self.assert_fails(SHIPPED_DOCKERFILE.replace("rust:1.95-bookworm", "rust:latest"), "latest")

    def test_a_root_runtime_user_fails(self):
        self.assert_fails(SHIPPED_DOCKERFILE.replace("USER 65532:65532", "USER root"), "non-root")

    def test_an_exposed_admin_port_fails(self):
        self.assert_fails(SHIPPED_DOCKERFILE.replace("EXPOSE 8443 8080", "EXPOSE 8443 8080 9090"), "9090")

    def test_a_missing_https_port_fails(self):
        self.assert_fails(SHIPPED_DOCKERFILE.replace("EXPOSE 8443 8080", "EXPOSE 8080"), "8443")

    def test_a_shell_healthcheck_fails(self):
        broken = SHIPPED_DOCKERFILE.replace('CMD ["portcullis", "health"', 'CMD ["curl", "health"')
        self.assert_fails(broken, "portcullis health")

    def test_a_missing_revision_label_fails(self):
        self.assert_fails(SHIPPED_DOCKERFILE.replace("org.opencontainers.image.revision=", "x.revision="),
                          "image.revision")

    def test_adding_a_url_fails(self):
        broken = SHIPPED_DOCKERFILE.replace("COPY src/ src/", "COPY src/ src/\nADD https://example.com/x.tar.gz /x")
        self.assert_fails(broken, "ADD of a URL")

    def test_each_dockerfile_check_fails_on_its_own_break(self):
        cases = [
            ("a single stage", lambda t: t.replace("FROM gcr.io/distroless/cc-debian12:nonroot", "# no runtime stage")
             .replace("COPY --from=build /build/target/release/portcullis /usr/local/bin/portcullis", ""),
             "multi-stage"),
            ("a debug build", lambda t: t.replace("cargo build --release --locked", "cargo build --locked"), "release build"),
            ("no Cargo.lock", lambda t: t.replace("COPY Cargo.toml Cargo.lock ./", "COPY Cargo.toml ./"), "Cargo.lock"),
            ("a named user", lambda t: t.replace("USER 65532:65532", "USER nonroot"), "numeric"),
            ("a shell-form entrypoint", lambda t: t.replace('ENTRYPOINT ["portcullis"]', "ENTRYPOINT portcullis"), "exec form"),
            ("an untagged image", lambda t: t.replace("FROM rust:1.95-bookworm AS build", "FROM rust AS build"), "tag or digest"),
            ("a missing COPY source", lambda t: t.replace("COPY src/ src/", "COPY src/ src/\nCOPY no-such-dir/ x/"), "no-such-dir"),
        ]
        for name, change, fragment in cases:
            with self.subTest(name):
                broken = change(SHIPPED_DOCKERFILE)
                self.assertNotEqual(broken, SHIPPED_DOCKERFILE, "the break applies to the shipped file")
                self.assert_fails(broken, fragment)


class BuildContext(unittest.TestCase):
    def test_the_shipped_dockerignore_keeps_secrets_out_and_sources_in(self):
        pats = cd.dockerignore_patterns()
        for secret in ["config/tls/key.pem", "deploy/compose/secrets/tls.key", ".git/HEAD", "target/release/portcullis"]:
            self.assertTrue(cd.ignored(secret, pats), secret)
        for source in ["Cargo.toml", "src/main.rs", "crates/entra-standin/Cargo.toml", "config/container/portcullis.toml"]:
            self.assertFalse(cd.ignored(source, pats), source)

    def test_a_deny_list_without_star_lets_secrets_in(self):
        pats = [(False, "target")]
        self.assertFalse(cd.ignored("config/tls/key.pem", pats))
        self.assertTrue(cd.ignored("target/release/portcullis", pats))

    def test_the_last_matching_pattern_wins(self):
        pats = [(False, "*"), (True, "src"), (False, "src/secret.rs")]
        self.assertFalse(cd.ignored("src/main.rs", pats))
        self.assertTrue(cd.ignored("src/secret.rs", pats))


class Product(unittest.TestCase):
    def test_a_binary_with_stand_in_code_fails(self):
        with tempfile.TemporaryDirectory() as d:
            clean, dirty = Path(d) / "clean", Path(d) / "dirty"
            clean.write_bytes(b"\x7fELF portcullis::proxy::Proxy::handle")
            dirty.write_bytes(b"\x7fELF crates/entra-standin/src/token.rs entra_standin::token")
            self.assertEqual(failures_of(cd.check_no_standin_text, clean), [])
            self.assertTrue(failures_of(cd.check_no_standin_text, dirty))


class Kubernetes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with redirect_stdout(io.StringIO()):
            cls.docs = cd.load_yaml_files()

    def proxy_deployment(self, docs):
        return next(d for _, d in docs if d.get("kind") == "Deployment"
                    and any("portcullis" in c["image"] for c in d["spec"]["template"]["spec"]["containers"]))

    def test_the_shipped_manifests_pass(self):
        self.assertEqual(failures_of(cd.check_kubernetes, self.docs), [])

    def broken(self, change):
        docs = copy.deepcopy(self.docs)
        change(self.proxy_deployment(docs))
        return failures_of(cd.check_kubernetes, docs)

    def test_a_probe_on_the_wrong_port_fails(self):
        def change(dep):
            c = dep["spec"]["template"]["spec"]["containers"][0]
            c["readinessProbe"]["httpGet"]["port"] = 8443
        self.assertTrue(any("readinessProbe" in f for f in self.broken(change)))

    def test_a_root_container_fails(self):
        def change(dep):
            pod = dep["spec"]["template"]["spec"]
            pod.get("securityContext", {}).pop("runAsNonRoot", None)
            for c in pod["containers"]:
                c.get("securityContext", {}).pop("runAsNonRoot", None)
        self.assertTrue(any("runAsNonRoot" in f for f in self.broken(change)))

    def test_replicas_beside_an_hpa_fails(self):
        self.assertTrue(any("replicas" in f for f in self.broken(lambda dep: dep["spec"].update(replicas=2))))

    def test_a_spread_without_honoring_taints_fails(self):
        def change(dep):
            dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0].pop("nodeTaintsPolicy")
        self.assertTrue(any("nodeTaintsPolicy" in f for f in self.broken(change)))

    def broken_doc(self, kind, change):
        docs = copy.deepcopy(self.docs)
        for _, d in docs:
            if d.get("kind") == kind:
                change(d)
        return failures_of(cd.check_kubernetes, docs)

    def test_a_min_available_pdb_fails(self):
        def change(pdb):
            pdb["spec"].pop("maxUnavailable")
            pdb["spec"]["minAvailable"] = 1
        self.assertTrue(any("maxUnavailable" in f for f in self.broken_doc("PodDisruptionBudget", change)))

    def test_an_admin_port_open_to_all_fails(self):
        def change(pol):
            for rule in pol["spec"].get("ingress", []):
                rule.pop("from", None)
        self.assertTrue(any("admin port only" in f for f in self.broken_doc("NetworkPolicy", change)))

    def test_a_namespace_without_pod_security_fails(self):
        def change(ns):
            ns["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce")
        self.assertTrue(any("restricted" in f for f in self.broken_doc("Namespace", change)))

    def test_routes_in_the_rolled_config_fail(self):
        # The routing file must not sit in the content-hashed ConfigMap of the main file.
        def change(dep):
            pod = dep["spec"]["template"]["spec"]
            pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "routes"]
            pod["containers"][0]["volumeMounts"] = [m for m in pod["containers"][0]["volumeMounts"]
                                                    if m["name"] != "routes"]
        self.assertTrue(any("routing file" in f for f in self.broken(change)))


class Schemas(unittest.TestCase):
    def test_the_shipped_objects_are_valid_and_a_misspelt_field_is_not(self):
        with redirect_stdout(io.StringIO()):
            docs = cd.load_yaml_files()
        self.assertEqual(failures_of(cd.check_k8s.validate_schemas, docs, cd.check), [])
        broken = copy.deepcopy(docs)
        dep = next(d for _, d in broken if d.get("kind") == "PodDisruptionBudget")
        dep["spec"]["maxUnavailible"] = 1
        found = failures_of(cd.check_k8s.validate_schemas, broken, cd.check)
        self.assertTrue(any("PodDisruptionBudget" in f and "schema" in f for f in found), found)


class Compose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with redirect_stdout(io.StringIO()):
            cls.docs = cd.load_yaml_files()

    def broken(self, change):
        docs = copy.deepcopy(self.docs)
        compose = next(d for _, d in docs if "services" in d)
        change(compose["services"])
        return failures_of(cd.check_compose, docs) + failures_of(cd.check_images, docs)

    def test_the_shipped_compose_file_passes(self):
        self.assertEqual(self.broken(lambda s: None), [])

    def test_a_port_published_on_every_address_fails(self):
        def change(services):
            services["portcullis"]["ports"][0] = "8443:8443"
        self.assertTrue(any("loopback" in f for f in self.broken(change)))

    def test_a_missing_healthcheck_fails(self):
        self.assertTrue(any("healthcheck" in f for f in self.broken(lambda s: s["portcullis"].pop("healthcheck"))))

    def test_a_moving_image_tag_fails(self):
        def change(services):
            services["redis"]["image"] = "redis:7-alpine"
        self.assertTrue(any("redis:7-alpine" in f for f in self.broken(change)))

    def broken_docs(self, change):
        docs = copy.deepcopy(self.docs)
        change(docs)
        return failures_of(cd.check_kubernetes, docs)

    def of_kind(self, docs, kind):
        return [d for _, d in docs if d.get("kind") == kind]

    def test_each_deployment_check_fails_on_its_own_break(self):
        def container(dep):
            return dep["spec"]["template"]["spec"]["containers"][0]

        def security(dep):
            return container(dep).setdefault("securityContext", {})

        def set_env(dep, name, value):
            env = container(dep).setdefault("env", [])
            env[:] = [e for e in env if e.get("name") != name]
            if value is not None:
                env.append({"name": name, "value": value})

        cases = [
            ("writable root", lambda d: security(d).update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
            ("privilege escalation", lambda d: security(d).update(allowPrivilegeEscalation=True), "allowPrivilegeEscalation"),
            ("capabilities kept", lambda d: security(d).update(capabilities={}), "drops all capabilities"),
            ("no seccomp", lambda d: d["spec"]["template"]["spec"].setdefault("securityContext", {})
             .pop("seccompProfile", None), "seccomp"),
            ("no limits", lambda d: container(d).update(resources={"requests": {"cpu": "1"}}), "requests and limits"),
            ("selector off the pods", lambda d: d["spec"]["selector"]["matchLabels"].update(app="other"), "selector"),
            ("RUST_LOG set", lambda d: set_env(d, "RUST_LOG", "debug"), "RUST_LOG"),
            ("text logs", lambda d: set_env(d, "PORTCULLIS__LOG__FORMAT", None), "LOG__FORMAT"),
            ("no scrape annotation", lambda d: d["spec"]["template"]["metadata"].setdefault("annotations", {})
             .pop("prometheus.io/scrape", None), "Prometheus"),
            ("liveness on the wrong path", lambda d: container(d)["livenessProbe"]["httpGet"].update(path="/"), "livenessProbe"),
            ("no preStop", lambda d: container(d).pop("lifecycle", None), "preStop"),
            ("grace too short", lambda d: d["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=5),
             "terminationGracePeriodSeconds"),
            ("a subPath mount", lambda d: container(d)["volumeMounts"][0].update(subPath="portcullis.toml"), "subPath"),
        ]
        for name, change, fragment in cases:
            with self.subTest(name):
                found = self.broken(change)
                self.assertTrue(any(fragment in f for f in found), f"no failure naming {fragment!r}: {found}")

    def test_each_companion_object_check_fails_on_its_own_break(self):
        def service_to_admin(docs):
            svc = next(d for d in self.of_kind(docs, "Service") if d["metadata"]["name"] == "portcullis")
            svc["spec"]["ports"][0]["targetPort"] = cd.ADMIN_PORT

        def configmap_without_main(docs):
            for cm in self.of_kind(docs, "ConfigMap"):
                cm.get("data", {}).pop("portcullis.toml", None)

        def memory_store(docs):
            for cm in self.of_kind(docs, "ConfigMap"):
                text = cm.get("data", {}).get("portcullis.toml")
                if text:
                    self.assertIn('store = "redis"', text)
                    cm["data"]["portcullis.toml"] = text.replace('store = "redis"', 'store = "memory"')

        cases = [
            ("an HPA of one", lambda docs: self.of_kind(docs, "HorizontalPodAutoscaler")[0]["spec"].update(minReplicas=1),
             "at least 2 replicas"),
            ("an HPA of another Deployment", lambda docs: self.of_kind(docs, "HorizontalPodAutoscaler")[0]["spec"]
             ["scaleTargetRef"].update(name="other"), "HPA"),
            ("a PDB of other pods", lambda docs: self.of_kind(docs, "PodDisruptionBudget")[0]["spec"]["selector"]
             .update(matchLabels={"app": "other"}), "PDB"),
            ("no PDB", lambda docs: docs.__setitem__(slice(None), [x for x in docs if x[1].get("kind") !=
                                                                   "PodDisruptionBudget"]), "an HPA and a PDB"),
            ("the admin port in the Service", service_to_admin, "admin port"),
            ("the main file missing", configmap_without_main, "holds portcullis.toml"),
            ("replicas on the memory store", memory_store, "share sessions"),
            ("a missing resource", lambda docs: self.of_kind(docs, "Kustomization")[0]["resources"].append("gone.yaml"),
             "gone.yaml"),
        ]
        for name, change, fragment in cases:
            with self.subTest(name):
                found = self.broken_docs(change)
                self.assertTrue(any(fragment in f for f in found), f"no failure naming {fragment!r}: {found}")

    def test_an_unpinned_or_latest_image_fails(self):
        for image in ["redis", "redis:latest"]:
            with self.subTest(image):
                docs = copy.deepcopy(self.docs)
                dep = next(d for _, d in docs if d.get("kind") == "Deployment")
                dep["spec"]["template"]["spec"]["containers"][0]["image"] = image
                self.assertTrue(any("pinned" in f for f in failures_of(cd.check_images, docs)))
        self.assertEqual(failures_of(cd.check_images, self.docs), [])


class Compose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with redirect_stdout(io.StringIO()):
            cls.docs = cd.load_yaml_files()

    def compose(self, docs):
        return next(d for _, d in docs if "services" in d)

    def broken(self, change):
        docs = copy.deepcopy(self.docs)
        change(self.compose(docs))
        return failures_of(cd.check_compose, docs)

    def test_the_shipped_compose_file_passes(self):
        self.assertEqual(failures_of(cd.check_compose, self.docs), [])

    def test_each_compose_check_fails_on_its_own_break(self):
        def admin_on_all_interfaces(d):
            ports = d["services"]["portcullis"]["ports"]
            ports[:] = [p for p in ports if not str(p).endswith(f":{cd.ADMIN_PORT}")] + [f"{cd.ADMIN_PORT}:{cd.ADMIN_PORT}"]

        def undeclared_secret(d):
            d["services"]["portcullis"].setdefault("secrets", []).append("not-declared")

        cases = [
            ("no portcullis service", lambda d: d["services"].pop("portcullis"), "a portcullis service"),
            ("the admin port published", admin_on_all_interfaces, "loopback"),
            ("an undeclared secret", undeclared_secret, "not-declared"),
            ("no redis service", lambda d: d["services"].pop("redis"), "redis"),
            ("a dependency that does not exist", lambda d: d["services"]["portcullis"].update(depends_on=["nowhere"]),
             "nowhere"),
            ("no configuration mounted", lambda d: d["services"]["portcullis"].update(volumes=[]), "/etc/portcullis"),
        ]
        for name, change, fragment in cases:
            with self.subTest(name):
                found = self.broken(change)
                self.assertTrue(any(fragment in f for f in found), f"no failure naming {fragment!r}: {found}")


class Summary(unittest.TestCase):
    def test_sign_in_must_be_reported_where_oidc_is_configured(self):
        cfg = {"oidc": {"issuer": "x"}, "session": {"store": "redis"}}
        self.assertEqual(failures_of(cd.check_summary, "t", cfg, {}, "sign-in: x, sessions in redis"), [])
        self.assertTrue(failures_of(cd.check_summary, "t", cfg, {}, "sign-in: not configured ([oidc] absent)"))
        self.assertTrue(failures_of(cd.check_summary, "t", cfg, {}, "sign-in: x, sessions in memory"))

    def test_the_environment_counts_as_configuration(self):
        env = {"PORTCULLIS__OIDC__ISSUER": "x", "PORTCULLIS__SESSION__STORE": "redis"}
        self.assertTrue(failures_of(cd.check_summary, "t", {}, env, "sign-in: not configured ([oidc] absent)"))
        self.assertEqual(failures_of(cd.check_summary, "t", {}, env, "sessions in redis"), [])

    def test_no_oidc_must_say_so(self):
        self.assertEqual(failures_of(cd.check_summary, "t", {}, {}, "sign-in: not configured ([oidc] absent)"), [])
        self.assertTrue(failures_of(cd.check_summary, "t", {}, {}, "sessions in memory"))


if __name__ == "__main__":
    unittest.main(verbosity=1)
