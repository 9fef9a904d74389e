"""EKS Pod Identity-style container credentials, through botocore's own default chain.

`iamlet up` associates the demo cluster's service account demo/reports-reader with the role
reports-reader and writes a pod's projected service-account token (audience
pods.eks.amazonaws.com) to $IAMLET_DATA_DIR/pod-identity-token. A workload then needs only
two variables, as on EKS:

    AWS_CONTAINER_CREDENTIALS_FULL_URI=$IAMLET_SIDECAR_HTTP/v1/credentials
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$IAMLET_DATA_DIR/pod-identity-token

The tests show botocore's default chain getting the role's credentials that way, iamlet's STS
naming the assumed role, `iamlet authorize` deciding with those credentials as the role's
policies say, and a bad token raising in botocore instead of yielding credentials.
"""

import json
import os
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore.exceptions
import botocore.session

BIN = os.environ["IAMLET_BIN"]
DATA_DIR = os.environ["IAMLET_DATA_DIR"]
SIDECAR_GRPC = os.environ["IAMLET_SIDECAR_GRPC"]
SIDECAR_HTTP = os.environ["IAMLET_SIDECAR_HTTP"]
ACCOUNT = os.environ["IAMLET_ACCOUNT"]

CREDENTIALS_URI = f"{SIDECAR_HTTP}/v1/credentials"
POD_TOKEN_FILE = os.path.join(DATA_DIR, "pod-identity-token")
ROLE = "reports-reader"
COMMAND_TIMEOUT_S = 60


def container_env(token_file):
    """The process environment a pod has: the two container variables, no other credentials
    (no keys, no profile, no web identity), so the default chain reaches the container
    provider."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") or k in ("AWS_DEFAULT_REGION", "AWS_CONFIG_FILE")
    }
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = CREDENTIALS_URI
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file
    # An empty credentials file: the suite's holds other principals' profiles.
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def default_chain_credentials(token_file):
    """What botocore's default chain resolves in a pod's environment: frozen credentials and
    the provider's method name."""
    with mock.patch.dict(os.environ, container_env(token_file), clear=True):
        session = botocore.session.Session()
        creds = session.get_credentials()
        if creds is None:
            raise AssertionError("the default chain found no credentials")
        return creds.get_frozen_credentials(), creds.method


def authorize(frozen, action, resource):
    """`iamlet authorize` with the credentials; (exit status, decision)."""
    args = [
        BIN,
        "authorize",
        "--sidecar",
        SIDECAR_GRPC,
        "--access-key-id",
        frozen.access_key,
        "--secret-access-key",
        frozen.secret_key,
        "--session-token",
        frozen.token,
        "--action",
        action,
        "--resource",
        resource,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)["Decision"]


class PodIdentityTest(unittest.TestCase):
    def test_default_chain_gets_the_roles_credentials(self):
        frozen, method = default_chain_credentials(POD_TOKEN_FILE)
        self.assertEqual(method, "container-role")
        self.assertTrue(frozen.access_key.startswith("ASIA"), frozen.access_key)
        self.assertEqual(len(frozen.secret_key), 40)
        self.assertTrue(frozen.token)
        # A second resolution is served from the sidecar's cache: the same session.
        again, _ = default_chain_credentials(POD_TOKEN_FILE)
        self.assertEqual(again.access_key, frozen.access_key)

    def test_sts_names_the_assumed_role_session(self):
        frozen, _ = default_chain_credentials(POD_TOKEN_FILE)
        sts = boto3.client(
            "sts",
            endpoint_url=SIDECAR_HTTP,
            region_name="us-east-1",
            aws_access_key_id=frozen.access_key,
            aws_secret_access_key=frozen.secret_key,
            aws_session_token=frozen.token,
        )
        identity = sts.get_caller_identity()
        self.assertEqual(identity["Account"], ACCOUNT)
        prefix = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/eks-demo-reports-reader-0-"
        self.assertTrue(identity["Arn"].startswith(prefix), identity["Arn"])

    def test_sts_endpoint_from_the_environment(self):
        # The same through the default chain and AWS_ENDPOINT_URL_STS, as a pod would run it.
        env = container_env(POD_TOKEN_FILE)
        env["AWS_ENDPOINT_URL_STS"] = SIDECAR_HTTP
        with mock.patch.dict(os.environ, env, clear=True):
            identity = boto3.session.Session().client("sts").get_caller_identity()
        self.assertIn(f":assumed-role/{ROLE}/eks-demo-", identity["Arn"])

    def test_iamlet_authorize_decides_by_the_roles_policies(self):
        frozen, _ = default_chain_credentials(POD_TOKEN_FILE)
        # ReportsReadOnly: read the reports, nothing else.
        report = "arn:aws:s3:::demo-data/reports/q4/summary.csv"
        self.assertEqual(authorize(frozen, "s3:GetObject", report), (0, "ALLOW"))
        status, decision = authorize(frozen, "s3:PutObject", report)
        self.assertEqual(status, 1)
        self.assertNotEqual(decision, "ALLOW")
        status, _ = authorize(frozen, "s3:GetObject", "arn:aws:s3:::demo-audit-logs/x.log")
        self.assertEqual(status, 1)

    def test_a_bad_token_raises_in_botocore(self):
        with open(POD_TOKEN_FILE, encoding="ascii") as f:
            genuine = f.read().strip()
        header, payload, signature = genuine.split(".")
        tampered_signature = ("A" if signature[0] != "A" else "B") + signature[1:]
        cases = {
            "garbage": "not-a-service-account-token",
            "bad signature": ".".join([header, payload, tampered_signature]),
            "unsigned": ".".join([header, payload, ""]),
        }
        for what, token in cases.items():
            with self.subTest(what), tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "token")
                with open(path, "w", encoding="ascii") as f:
                    f.write(token)
                with self.assertRaises(botocore.exceptions.BotoCoreError) as raised:
                    default_chain_credentials(path)
                self.assertNotIsInstance(raised.exception, botocore.exceptions.NoCredentialsError)

    def test_refusals_are_json_with_the_agents_status(self):
        def get(token):
            request = urllib.request.Request(CREDENTIALS_URI)
            if token is not None:
                request.add_header("Authorization", token)
            try:
                with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT_S) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        status, body = get(None)
        self.assertEqual((status, body["code"]), (400, "InvalidParameterException"))
        status, body = get("not-a-token")
        self.assertEqual((status, body["code"]), (401, "InvalidTokenException"))
        self.assertNotIn("AccessKeyId", body)
        with open(POD_TOKEN_FILE, encoding="ascii") as f:
            status, body = get(f.read().strip())
        self.assertEqual(status, 200)
        self.assertEqual(
            sorted(body), ["AccessKeyId", "AccountId", "Expiration", "SecretAccessKey", "Token"]
        )
        self.assertEqual(body["AccountId"], ACCOUNT)


if __name__ == "__main__":
    unittest.main()
