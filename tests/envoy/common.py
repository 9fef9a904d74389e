"""Shared helpers of the Envoy suite (tests/envoy/rig.sh sets the variables read here).

Variables: IAMLET_BIN, IAMLET_DATA_DIR, IAMLET_CP_GRPC, IAMLET_ACCOUNT, IAMLET_REGION,
IAMLET_ENVOY_URL (the listener whose routes ext_authz checks), IAMLET_ENVOY_UDS_URL (the same,
checked by a second sidecar over its Unix socket), IAMLET_ENVOY_DIRECT_URL (the same filters,
the check disabled), IAMLET_ENVOY_JWT_ROLE (the role name routes.yaml's jwt
route names), IAMLET_DECISION_LOG, IAMLET_WEB_IDENTITY_TOKEN_FILE, and AWS's
AWS_SHARED_CREDENTIALS_FILE (profile demo-admin, for `iamlet admin`).
"""

import http.client
import json
import os
import subprocess
import time
import urllib.parse
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

BIN = os.environ["IAMLET_BIN"]
DATA_DIR = os.environ["IAMLET_DATA_DIR"]
CP_GRPC = os.environ["IAMLET_CP_GRPC"]
ACCOUNT = os.environ["IAMLET_ACCOUNT"]
REGION = os.environ["IAMLET_REGION"]
ENVOY_URL = os.environ["IAMLET_ENVOY_URL"]
ENVOY_UDS_URL = os.environ["IAMLET_ENVOY_UDS_URL"]
ENVOY_DIRECT_URL = os.environ["IAMLET_ENVOY_DIRECT_URL"]
JWT_ROLE = os.environ["IAMLET_ENVOY_JWT_ROLE"]
DECISION_LOG = os.environ["IAMLET_DECISION_LOG"]
WEB_IDENTITY_TOKEN_FILE = os.environ["IAMLET_WEB_IDENTITY_TOKEN_FILE"]

# routes.yaml's API: execute-api resources are arn:aws:execute-api:REGION:ACCOUNT:demo/prod/...
API = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:demo/prod"
# `iamlet up`'s demo OIDC provider and the subject of its web identity token.
DEMO_ISSUER_HOST = "oidc.demo.iamlet.dev"
DEMO_SUBJECT = "system:serviceaccount:demo:reports-reader"

# An admin write reaches the sidecar within a second or two; every wait is bounded.
PATIENCE_S = 20
COMMAND_TIMEOUT_S = 60


def unique(prefix):
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def statement(effect, action, resource):
    return {"Effect": effect, "Action": action, "Resource": resource}


def admin(*args):
    """`iamlet admin --endpoint $IAMLET_CP_GRPC --profile demo-admin ARGS…`; its JSON output."""
    done = subprocess.run(
        [BIN, "admin", "--endpoint", CP_GRPC, "--profile", "demo-admin", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"iamlet admin {args[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    text = done.stdout.strip()
    return json.loads(text) if text else None


def new_user(policy_document):
    """A user with an inline policy and an access key: (ARN, Credentials)."""
    name = unique("envoy-user")
    user = admin("create-user", "--user-name", name)["User"]
    admin(
        "put-user-policy",
        "--user-name", name,
        "--policy-name", "inline",
        "--policy-document", policy_document,
    )
    key = admin("create-access-key", "--user-name", name)["AccessKey"]
    return user["Arn"], Credentials(key["AccessKeyId"], key["SecretAccessKey"])


class Response:
    """An answer through Envoy: status, headers (lower-cased names), body text, and the body
    as JSON when it is JSON."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"<{self.status} {self.body[:500]!r}>"

    def upstream_headers(self):
        """The headers the upstream received (it echoes them); fails unless it answered."""
        assert self.status == 200 and isinstance(self.json, dict) and "headers" in self.json, self
        return self.json["headers"]


def send(method, url, headers=None, body=b""):
    """One request exactly as given (no header added but Host and Content-Length)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=COMMAND_TIMEOUT_S)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        given = {k.lower() for k in (headers or {})}
        if "host" not in given:
            conn.putheader("Host", parts.netloc)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body or method in ("POST", "PUT"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        r = conn.getresponse()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def signed_headers(credentials, method, url, body=b"", headers=None):
    """`headers` and those botocore's SigV4Auth adds for execute-api in the table's region
    (Host, X-Amz-Date, Authorization, and X-Amz-Security-Token for session credentials);
    SigV4Auth signs every header given."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(credentials, "execute-api", REGION).add_auth(request)
    return dict(request.headers.items())


def signed(credentials, method, url, body=b""):
    return send(method, url, signed_headers(credentials, method, url, body), body)


def eventually(call, ready, what, patience_s=PATIENCE_S):
    """`call()`'s result once `ready(result)` holds (the sidecar has caught up with the
    control plane); fails with the last result when `patience_s` passes."""
    deadline = time.monotonic() + patience_s
    while True:
        result = call()
        if ready(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {result!r} after {patience_s} s")
        time.sleep(0.2)


def decision_lines():
    """The decision log's records so far (JSON lines)."""
    try:
        with open(DECISION_LOG, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
