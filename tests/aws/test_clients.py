"""Clients in other languages (issue 15, item 3): the README's Python gRPC client, generated
from proto/ with grpcio-tools, and its AuthZEN curl, run against the real sidecar. The demo
tenant is as `iamlet up` loads it (deploy/examples/demo-tenant.yaml)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.request

from common import ACCOUNT, COMMAND_TIMEOUT_S, SIDECAR_GRPC, SIDECAR_HTTP

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
OWN_NOTES = "arn:aws:s3:::demo-data/home/alice/notes.txt"
BOBS_NOTES = "arn:aws:s3:::demo-data/home/bob/notes.txt"


class PythonGrpcClient(unittest.TestCase):
    """The README's steps: generate the stubs, then ask Authorize."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.TemporaryDirectory()
        protos = sorted(
            os.path.join("proto", "iamlet", "v1", name)
            for name in os.listdir(os.path.join(REPO, "proto", "iamlet", "v1"))
            if name.endswith(".proto")
        )
        done = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", "proto",
             f"--python_out={cls.out.name}", f"--grpc_python_out={cls.out.name}", *protos],
            cwd=REPO, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise AssertionError(f"grpc_tools.protoc failed: {done.stderr}")
        sys.path.insert(0, cls.out.name)
        import grpc
        from iamlet.v1 import authorizer_pb2, authorizer_pb2_grpc, policy_pb2

        cls.pb = authorizer_pb2
        cls.policy = policy_pb2
        cls.channel = grpc.insecure_channel(SIDECAR_GRPC.removeprefix("http://"))
        cls.authorizer = authorizer_pb2_grpc.AuthorizerStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        sys.path.remove(cls.out.name)
        cls.out.cleanup()

    def authorize(self, resource):
        return self.authorizer.Authorize(
            self.pb.AuthorizeRequest(principal_arn=ALICE, action="s3:GetObject", resource=resource),
            timeout=10,
        )

    def test_generated_client_gets_an_allow_with_its_statement(self):
        answer = self.authorize(OWN_NOTES)
        self.assertEqual(answer.decision, self.policy.ALLOW)
        self.assertEqual(answer.statement.sid, "OwnPrefix")
        self.assertEqual(answer.principal_arn, ALICE)

    def test_generated_client_gets_an_implicit_deny_with_aws_message(self):
        answer = self.authorize(BOBS_NOTES)
        self.assertEqual(answer.decision, self.policy.IMPLICIT_DENY)
        self.assertIn(f"User: {ALICE} is not authorized to perform: s3:GetObject", answer.message)

    def test_a_malformed_request_is_invalid_argument(self):
        import grpc

        with self.assertRaises(grpc.RpcError) as raised:
            self.authorizer.Authorize(
                self.pb.AuthorizeRequest(principal_arn=ALICE, action="not-an-action", resource="*"),
                timeout=10,
            )
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


class AuthzenCurl(unittest.TestCase):
    """The README's AuthZEN request, as curl sends it."""

    def evaluate(self, resource_id):
        body = json.dumps({
            "subject": {"type": "iam_principal", "id": ALICE},
            "action": {"name": "s3:GetObject"},
            "resource": {"type": "s3_object", "id": resource_id},
        }).encode()
        request = urllib.request.Request(
            f"{SIDECAR_HTTP}/access/v1/evaluation", data=body,
            headers={"content-type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.status, 200)
            return json.load(response)

    def test_readme_evaluation_is_allowed_with_the_deciding_statement(self):
        answer = self.evaluate("demo-data/home/alice/notes.txt")
        self.assertIs(answer["decision"], True)
        self.assertEqual(answer["context"]["reason_admin"]["statement"]["sid"], "OwnPrefix")

    def test_another_users_prefix_is_denied(self):
        answer = self.evaluate("demo-data/home/bob/notes.txt")
        self.assertIs(answer["decision"], False)


if __name__ == "__main__":
    unittest.main()
