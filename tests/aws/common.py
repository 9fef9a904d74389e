"""Shared helpers of the AWS interop suite (tests/aws/run.sh sets the variables read here).

Variables: IAMLET_BIN, IAMLET_DATA_DIR, IAMLET_CP_GRPC, IAMLET_CP_HTTP, IAMLET_SIDECAR_GRPC,
IAMLET_SIDECAR_HTTP, IAMLET_ACCOUNT, IAMLET_WEB_IDENTITY_TOKEN_FILE, and AWS's own
AWS_SHARED_CREDENTIALS_FILE (profiles demo-admin and iamlet-operator), AWS_CONFIG_FILE and
AWS_DEFAULT_REGION. Every test creates what it needs under unique names, so files run in
any order.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import boto3
import botocore.config
import botocore.exceptions

BIN = os.environ["IAMLET_BIN"]
DATA_DIR = os.environ["IAMLET_DATA_DIR"]
CP_GRPC = os.environ["IAMLET_CP_GRPC"]
CP_HTTP = os.environ["IAMLET_CP_HTTP"]
SIDECAR_GRPC = os.environ["IAMLET_SIDECAR_GRPC"]
SIDECAR_HTTP = os.environ["IAMLET_SIDECAR_HTTP"]
ACCOUNT = os.environ["IAMLET_ACCOUNT"]
WEB_IDENTITY_TOKEN_FILE = os.environ["IAMLET_WEB_IDENTITY_TOKEN_FILE"]
# The demo tenant's role the web identity token may assume.
DEMO_WEB_IDENTITY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/reports-reader"

# Every wait is bounded: a change reaches the sidecar within a second or two.
PATIENCE_S = 20
# One subprocess is bounded too.
COMMAND_TIMEOUT_S = 60

STS_NAMESPACE = "{https://sts.amazonaws.com/doc/2011-06-15/}"
IAM_NAMESPACE = "{https://iam.amazonaws.com/doc/2010-05-08/}"


def unique(prefix):
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def policy(*statements):
    """A policy document of `statements`, as JSON text."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*"):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def run(args, env=None, check=True):
    """Runs a command; returns the CompletedProcess (text). Fails the test on a non-zero exit
    when `check`, with the command's stderr in the message."""
    done = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{args[:4]}… exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done


def admin(*args, profile="demo-admin"):
    """`iamlet admin --endpoint $IAMLET_CP_GRPC --profile demo-admin ARGS…`; its JSON output
    (or None when it prints none)."""
    done = run([BIN, "admin", "--endpoint", CP_GRPC, "--profile", profile, *args])
    text = done.stdout.strip()
    return json.loads(text) if text else None


def iamlet(*args, env=None, check=True):
    """`iamlet ARGS…`, e.g. `authorize` or `assume-role` against the suite's sidecar."""
    return run([BIN, *args], env=env, check=check)


def clean_env(**extra):
    """The suite's environment without AWS credentials or endpoints, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_DEFAULT_REGION"):
        env[name] = os.environ[name]
    env.update(extra)
    return env


def new_user(policy_document=None, name=None):
    """A user with an access key and, optionally, an inline policy: (name, key id, secret)."""
    name = name or unique("user")
    admin("create-user", "--user-name", name)
    if policy_document is not None:
        admin(
            "put-user-policy",
            "--user-name", name,
            "--policy-name", "inline",
            "--policy-document", policy_document,
        )
    key = admin("create-access-key", "--user-name", name)["AccessKey"]
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def new_role(trust_document, policy_document, name=None, max_session=3600):
    """A role with a trust policy and an inline policy; its ARN."""
    name = name or unique("role")
    role = admin(
        "create-role",
        "--role-name", name,
        "--assume-role-policy-document", trust_document,
        "--max-session-duration", str(max_session),
    )["Role"]
    admin(
        "put-role-policy",
        "--role-name", name,
        "--policy-name", "inline",
        "--policy-document", policy_document,
    )
    return role["Arn"]


def eventually(call, what, patience_s=PATIENCE_S, retry_on=(Exception,)):
    """`call()`'s result once it stops raising `retry_on` (the sidecar has caught up with the
    control plane); the last error when `patience_s` passes."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return call()
        except retry_on as error:  # noqa: PERF203 - a bounded retry loop
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still failing after {patience_s} s: {error}")
            time.sleep(0.2)


def session(**credentials):
    """A boto3 session of explicit keys, or (no arguments) of the default chain."""
    return boto3.session.Session(region_name="us-east-1", **credentials)


def keys_session(access_key_id, secret, token=None):
    return session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


NO_RETRIES = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def sts(boto_session):
    """An STS client of `boto_session` against the sidecar's HTTP edge, without retries (a
    refusal is what a test looks at)."""
    return boto_session.client("sts", endpoint_url=SIDECAR_HTTP, config=NO_RETRIES)


def error_code(error):
    """The AWS error code of a botocore ClientError."""
    assert isinstance(error, botocore.exceptions.ClientError), repr(error)
    return error.response["Error"]["Code"]


def raw(url, body=None, method=None, headers=None):
    """An HTTP request with urllib: (status, headers, body text), error statuses included."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def xml_code(text):
    """`<Error><Code>` of a Query `ErrorResponse`, whatever its namespace."""
    root = ET.fromstring(text)
    for element in root.iter():
        if element.tag.endswith("}Code") or element.tag == "Code":
            return element.text
    raise AssertionError(f"no <Code> in {text}")


def metric(url, series):
    """The value of one series (name with labels, exactly) on `url`/metrics; 0 when absent."""
    _, _, text = raw(f"{url}/metrics")
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0
