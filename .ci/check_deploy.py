#!/usr/bin/env python3
"""Checks for the container image and deployment files, run by .ci/check-deploy.

Subcommands, in the order check-deploy runs them:

  dockerfile               lint the Dockerfile's structure
  build DIR TARGET_DIR     replay the build stage in DIR: its COPYs (after .dockerignore) and
                           its cargo commands, in order, building into TARGET_DIR
  product DIR BINARY       prove the image's binary has no stand-in Entra ID: the dependency
                           graph of the build command (in the replayed DIR) has no test-only
                           crate, the binary holds none of the stand-in's code, and its
                           `demo` command says it was built without the demo
  yaml                     parse every YAML file under deploy/ and check the Kubernetes
                           objects and the compose file against each other and the configs
  schemas                  validate every Kubernetes object against the API schemas of the
                           oldest supported and the newest Kubernetes (kubernetes-validate)
  monitoring               promtool check/test of deploy/prometheus/alerts.yaml, the
                           PrometheusRule against it, the Grafana dashboard's structure
  configs BINARY WORKDIR   run `BINARY check` on every shipped portcullis.toml, with
                           throwaway certificates and secrets at the paths the files name

Every failure is printed as `FAIL: ...`; the exit status is 1 if there was any.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11; check-deploy installs tomli then
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_k8s  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
DEPLOY = REPO / "deploy"
ADMIN_PORT = 9090
HTTPS_PORT = 8443
HTTP_PORT = 8080

failures = []


def ok(msg):
    print(f"  ok    {msg}")


def fail(msg):
    failures.append(msg)
    print(f"  FAIL: {msg}")


def check(cond, msg, why=""):
    if cond:
        ok(msg)
    else:
        fail(f"{msg}{': ' + why if why else ''}")
    return cond


def finish():
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)


# --- Dockerfile --------------------------------------------------------------------------


def instructions(path):
    """(line, INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, buf, start = [], "", 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comments inside a continued instruction are not part of it
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def stages(path):
    """[{'from': image, 'name': alias, 'ins': [...]}] in order."""
    result = []
    for line, ins, args in instructions(path):
        if ins == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append({"from": words[0], "name": name, "line": line, "ins": []})
        elif result:
            result[-1]["ins"].append((line, ins, args))
    return result


def exec_form(args):
    """The argument list of an exec-form (JSON) or shell-form instruction."""
    if args.startswith("["):
        return json.loads(args)
    return ["/bin/sh", "-c", args]


def copy_parts(args):
    """(flags, sources, destination) of a COPY or ADD."""
    words = shlex.split(args)
    flags = [w for w in words if w.startswith("--")]
    rest = [w for w in words if not w.startswith("--")]
    return flags, rest[:-1], rest[-1]


def run_command(args):
    """The shell command of a RUN, without BuildKit flags such as --mount=..."""
    words = args.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words).strip()


def stage_env_path(stage):
    for _, ins, args in stage["ins"]:
        if ins == "ENV" and args.startswith("PATH"):
            return args.split("=", 1)[1].strip('"').split(":")
    # The PATH distroless and Debian images set.
    return ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]


def cargo_version():
    return tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]


def lint_dockerfile():
    print(f"Dockerfile lint ({os.path.relpath(DOCKERFILE, REPO)})")
    st = stages(DOCKERFILE)
    names = {s["name"] for s in st if s["name"]}
    check(len(st) >= 2, f"multi-stage build ({len(st)} stages)", "expected a build stage and a runtime stage")
    for s in st:
        image = s["from"]
        if image in names:
            continue
        repo_tag = image.split("@")[0]
        tagged = ":" in repo_tag.rsplit("/", 1)[-1] or "@" in image
        check(tagged and not repo_tag.endswith(":latest"), f"line {s['line']}: FROM {image} names a tag or digest, not latest")
    build = next((s for s in st if any(i == "RUN" and "cargo build" in a for _, i, a in s["ins"])), None)
    if not check(build is not None, "a stage runs `cargo build`"):
        return
    cmd = next(run_command(a) for _, i, a in build["ins"] if i == "RUN" and "cargo build" in a)
    check("--locked" in cmd.split(), f"the build uses --locked ({cmd})")
    check("--release" in cmd.split(), "the build is a release build")
    check("--no-default-features" in cmd.split(), "the build leaves out the `demo` feature (--no-default-features)",
          "default features compile the stand-in Entra ID into the image")
    copied = [src for _, i, a in build["ins"] if i == "COPY" for src in copy_parts(a)[1]]
    check(any(PurePosixPath(c).name == "Cargo.lock" for c in copied), "Cargo.lock is copied into the build stage")
    final = st[-1]
    check(final is not build, "the final stage is not the build stage")
    users = [a for _, i, a in final["ins"] if i == "USER"]
    user = users[-1].split(":")[0] if users else "root"
    check(user not in ("root", "0"), f"final stage runs as a non-root USER ({user})")
    check(user.isdigit(), "the USER is numeric", "Kubernetes' runAsNonRoot cannot verify a user name")
    exposed = {int(p.split("/")[0]) for _, i, a in final["ins"] if i == "EXPOSE" for p in a.split()}
    for port in (HTTPS_PORT, HTTP_PORT):
        check(port in exposed, f"EXPOSE lists {port}")
    check(ADMIN_PORT not in exposed, f"EXPOSE leaves out the admin port {ADMIN_PORT}",
          "`docker run -P` would publish the unauthenticated admin port on every address")
    health = [a for _, i, a in final["ins"] if i == "HEALTHCHECK"]
    if check(bool(health), "a HEALTHCHECK"):
        cmd = health[-1].split("CMD", 1)[-1].strip()
        args = exec_form(cmd) if cmd.startswith("[") else []
        check(args[:2] == ["portcullis", "health"],
              f"HEALTHCHECK runs `portcullis health` in exec form ({cmd})", "the image has no shell")
        if "--address" in args:
            check(args[args.index("--address") + 1].endswith(f":{ADMIN_PORT}"),
                  f"HEALTHCHECK probes the admin port {ADMIN_PORT}")
    dests = {}
    for _, i, a in final["ins"]:
        if i == "COPY":
            flags, srcs, dest = copy_parts(a)
            for src in srcs:
                target = dest if not dest.endswith("/") else dest + PurePosixPath(src).name
                dests[target] = (flags, src)
    entry = [exec_form(a) for _, i, a in final["ins"] if i == "ENTRYPOINT"]
    if check(bool(entry) and entry[-1][0] != "/bin/sh", "ENTRYPOINT is in exec form"):
        binary = entry[-1][0]
        candidates = [binary] if "/" in binary else [f"{d}/{binary}" for d in stage_env_path(final)]
        found = [c for c in candidates if c in dests]
        if check(bool(found), f"ENTRYPOINT {binary} is a COPY destination ({', '.join(found) or 'none'})"):
            flags, src = dests[found[0]]
            check(any(f.startswith("--from=") for f in flags) and src.endswith("/release/portcullis"),
                  f"it is the release binary copied from the build stage ({src})")
    cmd_args = [exec_form(a) for _, i, a in final["ins"] if i == "CMD"]
    if cmd_args and "--config" in cmd_args[-1]:
        config = cmd_args[-1][cmd_args[-1].index("--config") + 1]
        covered = any(config == d or (d.endswith("/") and config.startswith(d)) for d in
                      [copy_parts(a)[2] for _, i, a in final["ins"] if i == "COPY"])
        check(covered, f"CMD's --config {config} is inside a COPY destination")
    adds = [(n, a) for s in st for n, i, a in s["ins"] if i == "ADD"]
    remote = [n for n, a in adds if re.search(r"(https?|git)://|git@", a)]
    check(not remote, "no ADD of a URL", f"line(s) {remote}")
    check(not re.search(r":latest\b", DOCKERFILE.read_text()), "no `latest` tag anywhere")
    labels = " ".join(a for _, i, a in final["ins"] if i in ("LABEL", "ARG"))
    for label in ("source", "revision", "version"):
        check(f"org.opencontainers.image.{label}=" in labels, f"LABEL org.opencontainers.image.{label}")
    version = cargo_version()
    check(f"VERSION={version}" in labels or f'version="{version}"' in labels,
          f"the image version label follows Cargo.toml ({version})")
    for src in copied + [s for _, s in dests.values() if not s.startswith("/")]:
        check((REPO / src).exists(), f"COPY source {src} exists")


# --- build context ----------------------------------------------------------------------


def dockerignore_patterns():
    path = REPO / ".dockerignore"
    pats = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            p = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            pats.append((neg, p))
    return pats


def pattern_regex(p):
    """Docker's pattern syntax: `*` and `?` stay within a path segment, `**` crosses them."""
    out, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif p.startswith("**", i):
            out += ".*"
            i += 2
        elif p[i] == "*":
            out += "[^/]*"
            i += 1
        elif p[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(p[i])
            i += 1
    return re.compile(out + r"\Z")


def ignored(rel, pats):
    """As BuildKit decides: the last matching pattern wins, and a pattern matching a parent
    directory matches everything below it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    result = False
    for neg, p in pats:
        rx = pattern_regex(p)
        if any(rx.match(x) for x in prefixes):
            result = not neg
    return result


def build_stage():
    return next(s for s in stages(DOCKERFILE) if any(i == "RUN" and "cargo build" in a for _, i, a in s["ins"]))


def copy_into(dest, workdir, args, pats):
    """One COPY of the build stage, into `dest` standing for its WORKDIR; returns the count."""
    flags, srcs, target = copy_parts(args)
    if any(f.startswith("--from") for f in flags):
        fail(f"build stage COPY {args}: copies from another stage, which this check cannot replay")
        return 0
    rel_target = os.path.relpath(str(PurePosixPath(workdir, target)), workdir)
    if rel_target.startswith(".."):
        fail(f"COPY destination {target} is outside WORKDIR {workdir}")
        return 0
    as_dir = target.endswith("/") or len(srcs) > 1
    n = 0
    for src in srcs:
        s = REPO / src
        files = [s] if s.is_file() else sorted(p for p in s.rglob("*") if p.is_file())
        for f in files:
            if ignored(f.relative_to(REPO).as_posix(), pats):
                continue
            if s.is_file():
                out = Path(rel_target, s.name) if as_dir else Path(rel_target)
            else:
                out = Path(rel_target, f.relative_to(s))
            dst = dest / os.path.normpath(out)
            dst.parent.mkdir(parents=True, exist_ok=True)
            # copy2 keeps the source's mtime: with the same directory each run, cargo finds
            # its previous build fresh and rebuilds nothing that did not change.
            shutil.copy2(f, dst)
            n += 1
    return n


def build(dest, target_dir):
    """Replays the build stage outside Docker: each COPY (from the context as .dockerignore
    leaves it) and each RUN, in order, in `dest` standing for the WORKDIR, so a RUN sees only
    what the image build would have copied by then."""
    print("Build context (.dockerignore applied)")
    pats = dockerignore_patterns()
    for must in ["Cargo.toml", "Cargo.lock", "crates/entra-standin/Cargo.toml", "src/main.rs", "src/lib.rs", "config/container/portcullis.toml"]:
        check(not ignored(must, pats), f"{must} is in the build context")
    for secret in ["config/tls/key.pem", "deploy/compose/secrets/tls.key", "target/release/portcullis", ".git/HEAD"]:
        check(ignored(secret, pats), f"{secret} is kept out of the build context")
    stage = build_stage()
    commands = [run_command(a) for _, i, a in stage["ins"] if i == "RUN"]
    for c in commands:
        check(c.startswith("cargo "), f"build stage RUN `{c}` is a cargo command this check can replay")
    if failures:
        return
    print(f"Build stage ({stage['from']}), replayed in {dest}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    workdir = "/"
    for line, ins, args in stage["ins"]:
        if ins == "WORKDIR":
            workdir = args
        elif ins == "COPY":
            ok(f"line {line}: COPY {args} ({copy_into(dest, workdir, args, pats)} file(s))")
        elif ins == "RUN":
            command = run_command(args)
            print(f"  $ {command}", flush=True)
            started = time.monotonic()
            r = subprocess.run(["bash", "-c", command], cwd=dest, env=env)
            if not check(r.returncode == 0, f"line {line}: `{command}` ({time.monotonic() - started:.0f} s)",
                         f"exit status {r.returncode}"):
                return
        elif ins not in ("ARG", "ENV", "LABEL"):
            fail(f"line {line}: {ins} in the build stage, which this check cannot replay")
            return


# --- no stand-in in the product -----------------------------------------------------------

# The stand-in may not be anywhere in the image's dependency graph; the crates only it, the
# tests and the demo use may not be direct dependencies (others may still pull them in).
STANDIN_CRATE = "entra-standin"
TEST_ONLY_DIRECT = ["rcgen", "tempfile", "uuid"]
# Text that any compiled stand-in code leaves in a binary: its crate name in symbol and panic
# location paths.
STANDIN_NEEDLES = [b"entra_standin", b"entra-standin"]


def build_flags():
    """The feature and package flags of the Dockerfile's `cargo build`."""
    cmd = next(run_command(a) for _, i, a in build_stage()["ins"] if i == "RUN" and "cargo build" in a)
    args, flags, i = shlex.split(cmd), [], 0
    while i < len(args):
        a = args[i]
        if a in ("--no-default-features", "--all-features"):
            flags.append(a)
        elif a in ("-p", "--package", "-F", "--features"):
            flags += args[i:i + 2]
            i += 1
        elif a.startswith(("--features=", "--package=")):
            flags.append(a)
        i += 1
    return flags


def check_no_standin_text(binary):
    data = binary.read_bytes()
    for needle in STANDIN_NEEDLES:
        check(needle not in data, f"{binary.name} contains no `{needle.decode()}`")


def product(dest, binary):
    print("No stand-in in the product")
    flags = build_flags()
    def tree(*extra):
        r = subprocess.run(["cargo", "tree", "--locked", "--offline", "-e", "normal,build", "--prefix", "none",
                            *extra] + flags, cwd=dest, capture_output=True, text=True)
        if not check(r.returncode == 0, f"cargo tree {' '.join([*extra] + flags)} (the image's build) runs",
                     r.stderr.strip()[-400:]):
            return None
        return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}

    crates = tree()
    if crates is not None:
        check("portcullis" in crates and "hyper" in crates, f"the tree lists the product's crates ({len(crates)})")
        check(STANDIN_CRATE not in crates, f"{STANDIN_CRATE} is nowhere in the image's dependency graph")
    direct = tree("--depth", "1")
    if direct is not None:
        check("fred" in direct, f"the direct dependencies are listed ({len(direct)})")
        for name in TEST_ONLY_DIRECT:
            check(name not in direct, f"{name} is not a direct dependency of the image's build")
    check_no_standin_text(binary)
    # The needles are the right ones: a build with the default features does contain them.
    debug = binary.parent.parent / "debug" / binary.name
    if debug.exists() and debug.stat().st_mtime > (REPO / "crates" / "entra-standin" / "Cargo.toml").stat().st_mtime:
        check(any(n in debug.read_bytes() for n in STANDIN_NEEDLES),
              f"control: the default-features build {debug} does contain the stand-in")
    r = subprocess.run([str(binary), "demo"], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "without the `demo` feature" in r.stderr,
          "`portcullis demo` refuses, naming the missing feature", f"exit {r.returncode}: {r.stderr.strip()[:300]}")


# --- YAML --------------------------------------------------------------------------------


def load_yaml_files():
    import yaml

    docs = []
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
    for f in files:
        try:
            loaded = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
            ok(f"{f.relative_to(REPO)} parses ({len(loaded)} document(s))")
            docs += [(f, d) for d in loaded]
        except yaml.YAMLError as e:
            fail(f"{f.relative_to(REPO)} does not parse: {e}")
    # What kustomize's configMapGenerator makes from files, as kubectl apply -k would.
    docs += [(k, d) for k, d, _ in check_k8s.generated_configmaps(DEPLOY)]
    return docs


def configmap_files(docs):
    """{(name): {key: text}} of every ConfigMap under deploy/kubernetes."""
    return {d["metadata"]["name"]: (f, d.get("data", {})) for f, d in docs if d.get("kind") == "ConfigMap"}


def subset(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def duration_seconds(text):
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h)\s*", text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[unit]


def file_keys(cfg):
    """(dotted key, path) of every file the main file names: keys called `file` or ending in
    `_file`, in any section, so keys added later are covered without touching this script."""
    out = []
    for section, table in cfg.items():
        if not isinstance(table, dict):
            continue
        for k, v in table.items():
            if isinstance(v, str) and v and (k == "file" or k.endswith("_file")):
                out.append((f"{section}.{k}", v))
    for i, c in enumerate(cfg.get("tls", {}).get("certificates", [])):
        out += [(f"tls.certificates[{i}].cert_file", c["cert_file"]), (f"tls.certificates[{i}].key_file", c["key_file"])]
    return out


def check_images(docs):
    for f, d in docs:
        images = []
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            images = [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
        if "services" in d:
            images = [s["image"] for s in d["services"].values() if "image" in s and "build" not in s]
        for image in images:
            tag = image.split("@")[0].rsplit("/", 1)[-1].partition(":")[2]
            # A full release version (7.4.2, v1.10.3), not a moving one (7, 7-alpine, latest).
            check("@sha256:" in image or re.match(r"v?\d+\.\d+\.\d+", tag) is not None,
                  f"{f.relative_to(REPO)}: image {image} is pinned to a release tag or digest")


def check_kubernetes(docs):
    k8s = [(f, d) for f, d in docs if "kind" in d and "apiVersion" in d]
    for f, d in k8s:
        if d["kind"] == "Kustomization":
            for r in d.get("resources", []):
                check((f.parent / r).exists(), f"{f.relative_to(REPO)} lists {r}, which exists")
    deployments = [(f, d) for f, d in k8s if d["kind"] == "Deployment"]
    for f, d in deployments:
        pod = d["spec"]["template"]["spec"]
        where = f"{f.relative_to(REPO)}: Deployment {d['metadata']['name']}"
        check(subset(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]),
              f"{where}: selector matches its pod labels")
        psc = pod.get("securityContext", {})
        check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True, f"{where}/{c['name']}: runAsNonRoot")
            check(sc.get("readOnlyRootFilesystem") is True, f"{where}/{c['name']}: readOnlyRootFilesystem")
            check(sc.get("allowPrivilegeEscalation") is False, f"{where}/{c['name']}: allowPrivilegeEscalation false")
            check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}/{c['name']}: drops all capabilities")
            check("limits" in c.get("resources", {}) and "requests" in c.get("resources", {}),
                  f"{where}/{c['name']}: resource requests and limits")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"], {})
                if "configMap" in v or "secret" in v:
                    check("subPath" not in m and "subPathExpr" not in m,
                          f"{where}: {m['name']} is mounted at {m['mountPath']} without subPath",
                          "a subPath mount never sees ConfigMap or Secret updates")

    proxy = [(f, d) for f, d in deployments
             if any("portcullis" in c["image"] for c in d["spec"]["template"]["spec"]["containers"])]
    if not check(len(proxy) == 1, "exactly one Portcullis Deployment"):
        return
    f, dep = proxy[0]
    pod = dep["spec"]["template"]["spec"]
    c = next(c for c in pod["containers"] if "portcullis" in c["image"])
    labels = dep["spec"]["template"]["metadata"]["labels"]
    for kind, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", None)]:
        probe = c.get(kind)
        if probe is None and path is None:
            continue
        get = (probe or {}).get("httpGet", {})
        wanted = [path] if path else ["/healthz", "/readyz"]
        check(port_number(c, get.get("port")) == ADMIN_PORT and get.get("path") in wanted,
              f"{kind}: GET {get.get('path')} on port {get.get('port')} (want {' or '.join(wanted)} on {ADMIN_PORT})")
    check(all(e.get("name") != "RUST_LOG" for e in c.get("env", [])), "RUST_LOG is not set (it would override log.level)")
    check(any(e.get("name") == "PORTCULLIS__LOG__FORMAT" and e.get("value") == "json" for e in c.get("env", [])),
          "PORTCULLIS__LOG__FORMAT=json")
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(ADMIN_PORT)
          and ann.get("prometheus.io/path") == "/metrics", "Prometheus scrape annotations point at :9090/metrics")

    # The main file, as the pod sees it.
    args = c.get("args", [])
    config_path = args[args.index("--config") + 1] if "--config" in args else "/etc/portcullis/portcullis.toml"
    mounts = sorted(c.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    def mount_of(path):
        for m in mounts:
            if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/"):
                return m, volumes[m["name"]], os.path.relpath(path, m["mountPath"])
        return None, None, None

    m, vol, key = mount_of(config_path)
    if not check(vol is not None and "configMap" in vol, f"--config {config_path} is in a ConfigMap volume"):
        return
    cms = configmap_files(docs)
    cm_name = vol["configMap"]["name"]
    if not check(cm_name in cms and key in cms[cm_name][1], f"ConfigMap {cm_name} holds {key}"):
        return
    cfg = tomllib.loads(cms[cm_name][1][key])
    base = os.path.dirname(config_path)
    secrets = {d["metadata"]["name"]: d for _, d in k8s if d["kind"] == "Secret"}
    for dotted, p in file_keys(cfg):
        full = os.path.normpath(os.path.join(base, p))
        m, vol, key = mount_of(full)
        if not check(vol is not None, f"{dotted} = {p!r} → {full} is on a mounted volume"):
            continue
        if "configMap" in vol:
            check(key in cms.get(vol["configMap"]["name"], (None, {}))[1], f"{dotted}: ConfigMap {vol['configMap']['name']} holds {key}")
        elif "secret" in vol:
            name = vol["secret"]["secretName"]
            s = secrets.get(name)
            if check(s is not None, f"{dotted}: Secret {name} is described (secret.yaml)"):
                keys = set(s.get("data", {})) | set(s.get("stringData", {}))
                check(key in keys, f"{dotted}: Secret {name} has the key {key}")

    server = cfg.get("server", {})
    grace = duration_seconds(server.get("shutdown_grace", "30s"))
    sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    check(sleep > 0, f"preStop sleeps {sleep} s so endpoints are removed before the drain")
    check(tgps > grace + sleep, f"terminationGracePeriodSeconds {tgps} > preStop {sleep} s + shutdown_grace {grace} s")
    check(server.get("admin_listen", "").endswith(f":{ADMIN_PORT}"), f"server.admin_listen is on {ADMIN_PORT}")

    hpas = [d for _, d in k8s if d["kind"] == "HorizontalPodAutoscaler"]
    pdbs = [d for _, d in k8s if d["kind"] == "PodDisruptionBudget"]
    for h in hpas:
        ref = h["spec"]["scaleTargetRef"]
        check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"],
              f"HPA {h['metadata']['name']} scales Deployment {ref['name']}")
        check(h["spec"].get("minReplicas", 1) >= 2, f"HPA keeps at least 2 replicas ({h['spec'].get('minReplicas', 1)})")
    for p in pdbs:
        check(subset(p["spec"]["selector"].get("matchLabels", {}), labels), f"PDB {p['metadata']['name']} selects the Deployment's pods")
    check(bool(hpas) and bool(pdbs), "an HPA and a PDB exist")
    several = dep["spec"].get("replicas", 1) > 1 or any(h["spec"]["maxReplicas"] > 1 for h in hpas)
    if several:
        check(cfg.get("session", {}).get("store") == "redis", "several replicas share sessions: session.store = \"redis\"",
              "with the memory store every pod has its own sessions")

    services = [d for _, d in k8s if d["kind"] == "Service" and subset(d["spec"].get("selector", {}), labels)]
    if check(bool(services), "a Service selects the Portcullis pods"):
        for s in services:
            for p in s["spec"]["ports"]:
                target = port_number(c, p.get("targetPort", p["port"]))
                # A ClusterIP Service may carry it for the ServiceMonitor (check_k8s checks).
                if s["spec"].get("type", "ClusterIP") != "ClusterIP":
                    check(target != ADMIN_PORT and p["port"] != ADMIN_PORT,
                          f"Service {s['metadata']['name']} port {p['port']} → {target} is not the admin port")
                if target == HTTPS_PORT:
                    check(server.get("https_port", HTTPS_PORT) == p["port"],
                          f"server.https_port ({server.get('https_port')}) is the Service's HTTPS port {p['port']}",
                          "HTTP redirects would point at the wrong port")


    check_k8s.check_rules(docs, check_k8s.generated_configmaps(DEPLOY), dep, check, ADMIN_PORT)


def check_compose(docs):
    for f, d in docs:
        if "services" not in d:
            continue
        where = f.relative_to(REPO)
        svc = d["services"].get("portcullis")
        if not check(svc is not None, f"{where}: a portcullis service"):
            continue
        build = svc.get("build", {})
        ctx = f.parent / (build.get("context", ".") if isinstance(build, dict) else build)
        check((ctx / build.get("dockerfile", "Dockerfile")).exists(), f"{where}: builds from {build.get('dockerfile', 'Dockerfile')} in {ctx.resolve().relative_to(REPO) if ctx.resolve() != REPO else '.'}")
        for port in svc.get("ports", []):
            check(str(port).startswith("127.0.0.1:"), f"{where}: port {port} is published on loopback only")
        check(svc.get("image", "").endswith(f":{cargo_version()}"),
              f"{where}: the built image is tagged with Cargo.toml's version ({svc.get('image')})")
        test = svc.get("healthcheck", {}).get("test", [])
        check(test[:3] == ["CMD", "portcullis", "health"] and f"127.0.0.1:{ADMIN_PORT}" in test,
              f"{where}: the healthcheck runs `portcullis health` on the admin port ({test})")
        declared = d.get("secrets", {})
        used = [s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])]
        for name in used:
            check(name in declared, f"{where}: secret {name} is declared")
        config_dir = None
        for v in svc.get("volumes", []):
            src, _, rest = str(v).partition(":")
            if rest.split(":")[0] == "/etc/portcullis":
                config_dir = f.parent / src
        if not check(config_dir is not None and (config_dir / "portcullis.toml").exists(),
                     f"{where}: a directory with portcullis.toml is mounted at /etc/portcullis"):
            continue
        cfg = tomllib.loads((config_dir / "portcullis.toml").read_text())
        for dotted, p in file_keys(cfg):
            if p.startswith("/run/secrets/"):
                check(p[len("/run/secrets/"):] in used, f"{where}: {dotted} = {p!r} is a secret of the service")
            elif not p.startswith("/"):
                pass  # inside the mounted directory; `configs` proves these
        if cfg.get("session", {}).get("store") == "redis":
            check("redis" in d["services"], f"{where}: a redis service for session.store = \"redis\"")
        for name, s in d["services"].items():
            for dep in s.get("depends_on", {}):
                check(dep in d["services"], f"{where}: {name} depends on {dep}, which exists")


def yaml_checks():
    print("YAML under deploy/")
    docs = load_yaml_files()
    check_images(docs)
    print("Kubernetes objects")
    check_kubernetes(docs)
    print("docker compose")
    check_compose(docs)
    return docs


# --- configs against the real parser --------------------------------------------------------


# The shipped placeholders and what the check fills in for them (any IDs of the right shape).
PLACEHOLDERS = {
    "<tenant-id>": "11111111-2222-3333-4444-555555555555",
    "<application (client) id>": "00000000-0000-0000-0000-000000000000",
    "<cache-name>": "portcullis-cache",
}


def config_sets(docs):
    """(label, directory to copy from or {name: text}, main file name, extra env)."""
    sets = [
        ("image defaults (config/container)", REPO / "config/container", "portcullis.toml", {}),
        ("image defaults + sign-in from the environment (config/container)", REPO / "config/container", "portcullis.toml", {
            "PORTCULLIS__OIDC__ISSUER": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
            "PORTCULLIS__OIDC__CLIENT_ID": "00000000-0000-0000-0000-000000000000",
            "PORTCULLIS__OIDC__CLIENT_SECRET_FILE": "/run/secrets/client-secret",
            "PORTCULLIS__SESSION__STORE": "redis",
            "PORTCULLIS__SESSION__SECRET_FILE": "/run/secrets/session-secret",
            "PORTCULLIS__REDIS__URL": "redis://redis:6379/0",
        }),
        ("docker compose (deploy/compose/config)", DEPLOY / "compose/config", "portcullis.toml", {}),
    ]
    for label, files in pod_config_views(docs):
        sets.append((label, files, "portcullis.toml", {}))
    return sets


def pod_config_views(docs):
    """(label, {path below /etc/portcullis: text}) for each Deployment that mounts a main file
    there: what its pods see, assembled from every ConfigMap volume mounted below it."""
    cms = configmap_files(docs)
    out = []
    for f, d in docs:
        if d.get("kind") != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            files = {}
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"], {})
                rel = os.path.relpath(m["mountPath"], "/etc/portcullis")
                if "configMap" not in v or rel.startswith(".."):
                    continue
                for key, text in cms.get(v["configMap"]["name"], (None, {}))[1].items():
                    files[os.path.normpath(os.path.join(rel, key))] = text
            if "portcullis.toml" in files:
                out.append((f"Deployment {d['metadata']['name']} ({f.relative_to(REPO)}), as its pods see it", files))
    return out


def throwaway_pki(where):
    """A self-signed certificate and key, made once per run."""
    cert, key = where / "throwaway.crt", where / "throwaway.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=check-deploy", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
    return cert.read_text(), key.read_text()


def content_for(dotted, cert, key):
    name = dotted.rsplit(".", 1)[-1]
    if name.endswith("key_file"):
        return key
    if name.startswith("cert") or "certificate" in name or name.endswith("ca_file"):
        return cert
    if dotted == "session.secret_file":
        return os.urandom(36).hex() + "\n"
    if dotted == "redis.url_file":
        return "redis://127.0.0.1:6379/0\n"
    return os.urandom(16).hex() + "\n"


def check_summary(label, cfg, extra_env, out):
    """`portcullis check` describes the configuration as it is: sign-in and its store where
    `[oidc]` is set (in the file or the environment), "[oidc] absent" where it is not."""
    has_oidc = "oidc" in cfg or any(k.startswith("PORTCULLIS__OIDC__") for k in extra_env)
    if has_oidc:
        store = (extra_env.get("PORTCULLIS__SESSION__STORE") or cfg.get("session", {}).get("store") or "memory")
        check(f"sessions in {store}" in out, f"{label}: sign-in with sessions in {store}, as configured", out)
    else:
        check("[oidc] absent" in out, f"{label}: no sign-in, as configured (no [oidc])", out)


def configs(binary, work):
    print(f"Shipped configurations, checked by `{binary} check`")
    with open(os.devnull, "w") as quiet:
        saved, sys.stdout = sys.stdout, quiet
        try:
            docs = load_yaml_files()
        finally:
            sys.stdout = saved
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cert, key = throwaway_pki(work)
    for n, (label, source, main, extra_env) in enumerate(config_sets(docs)):
        root = work / f"set{n}"
        etc = root / "etc"
        if isinstance(source, Path):
            shutil.copytree(source, etc)
        else:
            etc.mkdir(parents=True)
            for name, text in source.items():
                (etc / name).parent.mkdir(parents=True, exist_ok=True)
                (etc / name).write_text(text)
        cfg_path = etc / main
        cfg = tomllib.loads(cfg_path.read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS") and k != "RUST_LOG"}
        overrides = dict(extra_env)
        # Files named in the file and in the environment overrides alike.
        named = file_keys(cfg) + [
            (k[len("PORTCULLIS__"):].lower().replace("__", "."), v)
            for k, v in extra_env.items() if k.endswith("_FILE")
        ]
        for dotted, p in named:
            if dotted == "routes.file":
                check((etc / p).exists() if not p.startswith("/") else False,
                      f"{label}: the routing file {p} ships beside the main file")
                continue
            if p.startswith("/"):
                # An absolute path of the deployment (a mounted Secret): the same path below
                # the scratch root, handed over as an environment override of the same key.
                target = root / p.lstrip("/")
                section, _, k = dotted.partition(".")
                if "[" in section:
                    fail(f"{label}: {dotted} is absolute; the check can only move tls.cert_file-style keys")
                    continue
                overrides[f"PORTCULLIS__{section.upper()}__{k.upper()}"] = str(target)
            else:
                target = etc / p
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content_for(dotted, cert, key))
        env.update(overrides)
        run_check = lambda: subprocess.run([str(binary), "check", "--config", str(cfg_path)], env=env,
                                           capture_output=True, text=True)
        text = cfg_path.read_text()
        shipped = [p for p in PLACEHOLDERS if p in text]
        if shipped:
            # As shipped, the file must be refused until the operator fills its placeholders in.
            r = run_check()
            out = (r.stdout + r.stderr).strip()
            check(r.returncode != 0 and "placeholder" in out,
                  f"{label}: `portcullis check` refuses the shipped placeholders {', '.join(shipped)}", out)
            for p in shipped:
                text = text.replace(p, PLACEHOLDERS[p])
            cfg_path.write_text(text)
        r = run_check()
        out = (r.stdout + r.stderr).strip()
        if check(r.returncode == 0, f"{label}: `portcullis check` passes", out):
            for line in out.splitlines():
                if line.strip():
                    print(f"          {line}")
            check_summary(label, cfg, extra_env, out)


def main():
    # Our lines and cargo's output go to the same log: keep them in order.
    sys.stdout.reconfigure(line_buffering=True)
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "dockerfile":
        lint_dockerfile()
    elif cmd == "build":
        build(Path(sys.argv[2]), Path(sys.argv[3]))
    elif cmd == "product":
        product(Path(sys.argv[2]), Path(sys.argv[3]))
    elif cmd == "yaml":
        yaml_checks()
    elif cmd == "schemas":
        print("Kubernetes objects against the API schemas (kubernetes-validate, strict)")
        check_k8s.validate_schemas([(f.relative_to(REPO), d) for f, d in load_yaml_files()], check)
    elif cmd == "monitoring":
        print("Alert rules (promtool) and the Grafana dashboard")
        check_k8s.check_rules_files(DEPLOY, check)
        check_k8s.check_dashboard(DEPLOY, check)
    elif cmd == "configs":
        configs(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(__doc__)
        sys.exit(2)
    finish()


if __name__ == "__main__":
    main()
