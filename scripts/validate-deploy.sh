#!/usr/bin/env bash
# Checks the deployment files in deploy/ without a container engine or a
# Kubernetes cluster (docs/deploy.md, "How the files are checked"):
#
#   1. yamllint (deploy/.yamllint, warnings count) over deploy/;
#   2. every manifest in deploy/k8s against the Kubernetes API schema of
#      K8S_VERSION, strictly (unknown fields and unknown kinds fail);
#   3. the manifests as kustomize renders them, the same way (when kubectl
#      is installed);
#   4. what the schemas cannot see: compose.yaml's services, secrets, media
#      ranges and grace period; the manifests' references to their Secret,
#      ConfigMap and Services, drain against grace period; every TESSERA_*
#      variable against the keys of config/default.toml;
#   5. `docker compose config` (when Docker's compose plugin is installed).
#
#   scripts/validate-deploy.sh
#
# Its tools (yamllint, kubernetes-validate: pinned below) are installed from
# PyPI into a virtual environment on first use: $TESSERA_DEPLOY_VENV, by
# default ~/.cache/tessera/deploy-venv. Needs python3 (3.9 or later) with
# its venv module. Runs every check, then exits 1 if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

K8S_VERSION=1.30.0
YAMLLINT_VERSION=1.38.0
KUBERNETES_VALIDATE_VERSION=1.37.0
venv="${TESSERA_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera/deploy-venv}"

passed=0
failed=0
failures=()

# check NAME COMMAND...: runs one check, counts it, goes on either way.
check() {
  local name="$1"
  shift
  printf '\n== %s\n' "$name"
  local status=0
  "$@" || status=$?
  if [ "$status" -eq 0 ]; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

install_tools() {
  if [ -x "$venv/bin/yamllint" ] && [ -x "$venv/bin/kubernetes-validate" ] &&
    [ "$("$venv/bin/yamllint" --version 2>/dev/null)" = "yamllint $YAMLLINT_VERSION" ] &&
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ]; then
    return 0
  fi
  echo "validate-deploy: installing yamllint $YAMLLINT_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input \
    "yamllint==$YAMLLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}

# The manifests: every YAML file in deploy/k8s but kustomization.yaml, which
# is kustomize's own file and no Kubernetes object.
manifests=()
for f in deploy/k8s/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done

# k8s_schema FILE...: kubernetes-validate, strict. It only warns about a
# kind it has no schema for (a misspelt kind, say): that fails here too.
k8s_schema() {
  local out status=0
  out="$("$venv/bin/kubernetes-validate" --kubernetes-version "$K8S_VERSION" --strict "$@" 2>&1)" || status=$?
  printf '%s\n' "$out"
  if [ "$status" -ne 0 ]; then return 1; fi
  if grep -q '^WARN' <<<"$out"; then
    echo "(a warning counts as a failure here)"
    return 1
  fi
  return 0
}

k8s_rendered() {
  local rendered status=0
  rendered="$(mktemp /tmp/tessera-k8s.XXXXXX.yaml)"
  timeout 120 kubectl kustomize deploy/k8s >"$rendered" || status=$?
  if [ "$status" -eq 0 ]; then
    echo "kubectl kustomize deploy/k8s: $(grep -c '^kind:' "$rendered") objects"
    k8s_schema "$rendered" || status=$?
  fi
  rm -f "$rendered"
  return "$status"
}

# The checks a schema cannot make. Prints each finding; exits 1 on any.
semantics() {
  "$venv/bin/python" - <<'PY'
import pathlib
import re
import sys
import tomllib

import yaml

problems = []
checked = []


def problem(where, text):
    problems.append(f"{where}: {text}")


# --- The config keys a TESSERA_* variable may name -------------------------
# Every key of config/default.toml, and the keys it shows commented out
# (`# public_ip = ...`), by section.
known = set()
section = None
for line in pathlib.Path("config/default.toml").read_text().splitlines():
    m = re.match(r"^\[(\w+)\]", line)
    if m:
        section = m.group(1)
        continue
    m = re.match(r"^#?\s*(\w+)\s*=", line)
    if m and section:
        known.add(f"{section}.{m.group(1)}")
with open("config/default.toml", "rb") as f:
    for sec, table in tomllib.load(f).items():
        known.update(f"{sec}.{key}" for key in table)
SHORT = {
    "ADMIN_KEY": "admin.key",
    "TOKEN_SECRET": "auth.secret",
    "TURN_SECRET": "ice.turn_secret",
    "RECORDINGS_DIR": "recording.dir",
}


def env_key_ok(where, name):
    """A TESSERA_ variable the server reads; a typo is otherwise ignored."""
    if not name.startswith("TESSERA_") or name == "TESSERA_LOG":
        return
    rest = name[len("TESSERA_"):]
    path = SHORT.get(rest) or rest.lower().replace("__", ".")
    if "__" not in rest and rest not in SHORT:
        problem(where, f"{name} is no config key (TESSERA_<SECTION>__<KEY>, two underscores); the server would ignore it")
    elif path not in known:
        problem(where, f"{name} names {path}, which config/default.toml does not have")


def duration_seconds(text):
    total, rest = 0, str(text)
    for amount, unit in re.findall(r"(\d+)(h|ms|m|s|us)", rest):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}[unit]
    if not re.fullmatch(r"((\d+)(h|ms|m|s|us))+", rest):
        raise ValueError(f"not a duration: {text!r}")
    return total


# --- compose.yaml ------------------------------------------------------------
compose_path = "deploy/compose.yaml"
env_example = {}
for line in pathlib.Path("deploy/.env.example").read_text().splitlines():
    line = line.strip()
    if line and not line.startswith("#"):
        key, sep, value = line.partition("=")
        if not sep:
            problem("deploy/.env.example", f"not KEY=VALUE: {line!r}")
        env_example[key] = value

raw_compose = pathlib.Path(compose_path).read_text()
VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


def interpolate(value):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} with deploy/.env.example."""
    if not isinstance(value, str):
        return value

    def one(m):
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        have = env_example.get(name)
        if op in (":?", "?") and (have is None or (op == ":?" and have == "")):
            problem(compose_path, f"${{{name}}} is required ({arg}) but deploy/.env.example does not set it")
            return ""
        if op in (":-", "-") and (have is None or (op == ":-" and have == "")):
            return arg
        return have if have is not None else ""

    parts = value.split("$$")
    return "$".join(VAR.sub(one, p) for p in parts)


def walk(node):
    if isinstance(node, dict):
        return {k: walk(v) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v) for v in node]
    return interpolate(node)


compose = walk(yaml.safe_load(raw_compose))
services = compose.get("services") or {}
for name in ("tessera-a", "tessera-b", "redis", "coturn"):
    if name not in services:
        problem(compose_path, f"no service {name}")
checked.append("compose: services tessera-a, tessera-b, redis, coturn")


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


REQUIRED_ENV = [
    "TESSERA_CLUSTER__REDIS_URL",
    "TESSERA_CLUSTER__NODE_ID",
    "TESSERA_SERVER__PUBLIC_URL",
    "TESSERA_TOKEN_SECRET",
    "TESSERA_ADMIN_KEY",
    "TESSERA_TURN_SECRET",
    "TESSERA_MEDIA__RTP_PORT_MIN",
    "TESSERA_MEDIA__RTP_PORT_MAX",
    "TESSERA_ICE__PUBLIC_IP",
    "TESSERA_CLUSTER__DRAIN_SECONDS",
]
nodes = {}
for name in ("tessera-a", "tessera-b"):
    svc = services.get(name)
    if not svc:
        continue
    where = f"{compose_path} {name}"
    env = environment(svc)
    for key in env:
        env_key_ok(where, key)
    for key in REQUIRED_ENV:
        if not env.get(key):
            problem(where, f"does not set {key}")
    if not env.get("TESSERA_CLUSTER__REDIS_URL", "").startswith(("redis://", "rediss://")):
        problem(where, "TESSERA_CLUSTER__REDIS_URL is not a redis:// URL")
    elif "@redis:" not in env["TESSERA_CLUSTER__REDIS_URL"] and "//redis:" not in env["TESSERA_CLUSTER__REDIS_URL"]:
        problem(where, "TESSERA_CLUSTER__REDIS_URL does not point at the redis service")
    if not re.match(r"https?://", env.get("TESSERA_SERVER__PUBLIC_URL", "")):
        problem(where, "TESSERA_SERVER__PUBLIC_URL is not an http(s) URL")
    try:
        lo, hi = int(env["TESSERA_MEDIA__RTP_PORT_MIN"]), int(env["TESSERA_MEDIA__RTP_PORT_MAX"])
    except (KeyError, ValueError):
        problem(where, "the media port range is not two numbers")
        continue
    http_port, published = None, False
    for port in svc.get("ports") or []:
        if not isinstance(port, str):
            problem(where, f"port {port!r}: use the short form HOST:CONTAINER[/udp]")
            continue
        spec, _, proto = port.partition("/")
        host, _, container = spec.rpartition(":")
        if proto == "udp":
            if host == container == f"{lo}-{hi}":
                published = True
            else:
                problem(where, f"UDP ports {port!r}: publish the media range {lo}-{hi} one to one (ICE announces the port)")
        elif container == "8080":
            http_port = host
    if not published:
        problem(where, f"does not publish its media range {lo}-{hi}/udp")
    if http_port is None:
        problem(where, "does not publish the HTTP port 8080")
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in svc.get("volumes") or []]
    recordings = [m.split(":")[0] for m in mounts if m.split(":")[1:2] == ["/var/lib/tessera/recordings"]]
    if not recordings:
        problem(where, "no volume at /var/lib/tessera/recordings")
    try:
        grace = duration_seconds(svc.get("stop_grace_period", "10s"))
        drain = int(env.get("TESSERA_CLUSTER__DRAIN_SECONDS", "300"))
        if grace <= drain:
            problem(where, f"stop_grace_period ({grace:g} s) must be longer than TESSERA_CLUSTER__DRAIN_SECONDS ({drain} s)")
    except ValueError as e:
        problem(where, str(e))
    turn_secret = env.get("TESSERA_TURN_SECRET")
    coturn_args = services.get("coturn", {}).get("command") or []
    if f"--static-auth-secret={turn_secret}" not in coturn_args:
        problem(where, "TESSERA_TURN_SECRET is not coturn's --static-auth-secret")
    nodes[name] = {"range": (lo, hi), "http": http_port, "id": env.get("TESSERA_CLUSTER__NODE_ID"),
                   "recordings": recordings[:1]}
checked.append("compose: each node sets the Redis URL, its id, public URL, media range and the secrets")
checked.append("compose: each node publishes its media range one to one and its HTTP port, and has a recordings volume")
checked.append("compose: stop_grace_period longer than the drain; the nodes' TURN secret is coturn's")

if len(nodes) == 2:
    a, b = nodes["tessera-a"], nodes["tessera-b"]
    if a["range"][0] <= b["range"][1] and b["range"][0] <= a["range"][1]:
        problem(compose_path, f"the nodes' media ranges overlap: {a['range']} and {b['range']}")
    if a["http"] == b["http"]:
        problem(compose_path, f"both nodes publish HTTP on host port {a['http']}")
    if a["id"] == b["id"]:
        problem(compose_path, f"both nodes are named {a['id']!r}")
    if a["recordings"] == b["recordings"]:
        problem(compose_path, "both nodes record into the same volume")
    checked.append("compose: the two nodes differ in media range, HTTP port, node id and recordings volume")

coturn_args = services.get("coturn", {}).get("command") or []
for flag in ("--use-auth-secret", "--realm=", "--min-port=", "--max-port=", "--listening-port=3478"):
    if not any(str(a).startswith(flag) for a in coturn_args):
        problem(f"{compose_path} coturn", f"missing {flag}")
checked.append("compose: coturn uses the shared secret, a realm and a relay port range")

# --- Kubernetes manifests ----------------------------------------------------
k8s_dir = pathlib.Path("deploy/k8s")
kustomization = yaml.safe_load((k8s_dir / "kustomization.yaml").read_text())
listed = set(kustomization.get("resources") or [])
present = {p.name for p in k8s_dir.glob("*.yaml") if p.name != "kustomization.yaml"}
for name in sorted(present - listed):
    problem("deploy/k8s/kustomization.yaml", f"does not list {name}")
for name in sorted(listed - present):
    problem("deploy/k8s/kustomization.yaml", f"lists {name}, which does not exist")
checked.append("k8s: kustomization.yaml lists exactly the manifests")

objects = []
for name in sorted(present):
    for doc in yaml.safe_load_all((k8s_dir / name).read_text()):
        if doc:
            objects.append((name, doc))
by_kind = {}
for name, doc in objects:
    by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = (name, doc)
secrets = {n: set((d.get("stringData") or {}) | (d.get("data") or {})) for n, (_, d) in by_kind.get("Secret", {}).items()}
configmaps = {n: d.get("data") or {} for n, (_, d) in by_kind.get("ConfigMap", {}).items()}

for cm_name, data in configmaps.items():
    for key in data:
        env_key_ok(f"ConfigMap {cm_name}", key)

workloads = [(kind, n, f, d) for kind in ("Deployment", "StatefulSet") for n, (f, d) in by_kind.get(kind, {}).items()]
for kind, name, file, doc in workloads:
    where = f"deploy/k8s/{file} {kind} {name}"
    spec = doc["spec"]["template"]["spec"]
    labels = doc["spec"]["template"]["metadata"].get("labels") or {}
    if doc["spec"]["selector"].get("matchLabels", {}).items() - labels.items():
        problem(where, "the selector does not match the pod template's labels")
    if spec.get("hostNetwork") and spec.get("dnsPolicy") != "ClusterFirstWithHostNet":
        problem(where, "hostNetwork without dnsPolicy ClusterFirstWithHostNet cannot resolve cluster names")
    for c in spec.get("containers", []):
        env_names = []
        for src in c.get("envFrom") or []:
            ref = src.get("configMapRef") or src.get("secretRef")
            pool = configmaps if "configMapRef" in src else secrets
            if ref and ref["name"] not in pool:
                problem(where, f"envFrom names {ref['name']}, which no manifest defines")
            elif ref and "configMapRef" in src:
                env_names += list(configmaps[ref["name"]])
        for e in c.get("env") or []:
            env_names.append(e["name"])
            env_key_ok(where, e["name"])
            vf = e.get("valueFrom") or {}
            for kind_ref, pool in (("secretKeyRef", secrets), ("configMapKeyRef", configmaps)):
                ref = vf.get(kind_ref)
                if ref and (ref["name"] not in pool or ref["key"] not in pool[ref["name"]]):
                    problem(where, f"{e['name']} reads {kind_ref} {ref['name']}/{ref['key']}, which no manifest defines")
            for used in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                if used not in env_names[:-1]:
                    problem(where, f"{e['name']} uses $({used}), which is not defined before it")
        if name == "tessera":
            for key in REQUIRED_ENV:
                if key not in env_names and key not in ("TESSERA_ICE__PUBLIC_IP",):
                    problem(where, f"does not set {key}")
            probes = {p: (c.get(p) or {}).get("httpGet", {}).get("path") for p in ("readinessProbe", "livenessProbe")}
            if probes != {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}:
                problem(where, f"probes should be /readyz (readiness) and /healthz (liveness), are {probes}")
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
            claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates") or []}
            if mounts.get("/var/lib/tessera/recordings") not in claims:
                problem(where, "no volume claim mounted at /var/lib/tessera/recordings")
            drain = None
            for e in c.get("env") or []:
                if e["name"] == "TESSERA_CLUSTER__DRAIN_SECONDS":
                    drain = int(e["value"])
            for src in c.get("envFrom") or []:
                ref = src.get("configMapRef")
                if drain is None and ref and "TESSERA_CLUSTER__DRAIN_SECONDS" in configmaps.get(ref["name"], {}):
                    drain = int(configmaps[ref["name"]]["TESSERA_CLUSTER__DRAIN_SECONDS"])
            drain = 300 if drain is None else drain
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if grace <= drain:
                problem(where, f"terminationGracePeriodSeconds ({grace}) must be longer than the drain ({drain} s)")
            if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
                problem(where, "runAsNonRoot is not set")
    if kind == "StatefulSet":
        svc = by_kind.get("Service", {}).get(doc["spec"].get("serviceName"))
        if not svc:
            problem(where, f"serviceName {doc['spec'].get('serviceName')} is no Service here")
        elif name == "tessera" and svc[1]["spec"].get("clusterIP") != "None":
            problem(where, "serviceName should be a headless Service (clusterIP: None)")
checked.append("k8s: every secretKeyRef, configMapKeyRef and envFrom points at a key a manifest defines")
checked.append("k8s: tessera sets its node id, public URL, Redis URL and secrets; probes /readyz and /healthz")
checked.append("k8s: grace period longer than the drain; recordings on a volume claim; headless serviceName")

for name, (file, svc) in by_kind.get("Service", {}).items():
    selector = svc["spec"].get("selector") or {}
    targets = [(k, n, d) for k, n, _, d in workloads
               if selector and selector.items() <= (d["spec"]["template"]["metadata"].get("labels") or {}).items()]
    if not targets:
        problem(f"deploy/k8s/{file} Service {name}", "its selector matches no workload")
    port_names = {p.get("name") for _, _, d in targets for c in d["spec"]["template"]["spec"]["containers"]
                  for p in c.get("ports") or []}
    for p in svc["spec"].get("ports") or []:
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in port_names:
            problem(f"deploy/k8s/{file} Service {name}", f"targetPort {p['targetPort']} is no port of the pods it selects")
checked.append("k8s: every Service selects a workload, by a port name it has")
checked.append("TESSERA_* variables in compose.yaml and the manifests name keys of config/default.toml")

for line in checked:
    print(f"checked: {line}")
for line in problems:
    print(f"problem: {line}")
sys.exit(1 if problems else 0)
PY
}

compose_config() {
  docker compose -f deploy/compose.yaml --env-file deploy/.env.example config -q
}

echo "validate-deploy: checking deploy/ (Kubernetes $K8S_VERSION)"
install_tools
check "yamllint -s (deploy/.yamllint) over deploy/" \
  "$venv/bin/yamllint" --strict --config-file deploy/.yamllint deploy/
check "Kubernetes $K8S_VERSION schemas, strict: ${manifests[*]}" k8s_schema "${manifests[@]}"
if command -v kubectl >/dev/null 2>&1; then
  check "kubectl kustomize deploy/k8s, rendered objects against the schemas" k8s_rendered
else
  echo
  echo "skipped: kubectl kustomize (kubectl is not installed)"
fi
check "compose.yaml, manifests and config keys beyond the schemas" semantics
if timeout 30 docker compose version >/dev/null 2>&1; then
  check "docker compose config -q (with deploy/.env.example)" compose_config
else
  echo
  echo "skipped: docker compose config (no Docker compose plugin here)"
fi

echo
if [ "$failed" -gt 0 ]; then
  printf 'validate-deploy: failed: %s\n' "${failures[@]}"
fi
echo "validate-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
