"""Issue 17 item 8 over the real processes: a policy generated from alice's decisions.

Run by tests/aws/run.sh (see its contract). A fresh user with a broad policy makes Authorize
calls through the sidecar (the README's Python gRPC client), some resources repeated; `iamlet
up` writes the sidecar's decision log to $IAMLET_DATA_DIR/decisions.log. Then `iamlet policy
generate --verify` over that log prints a policy that `iamlet policy validate` accepts and that
the control plane's SimulateCustomPolicy finds allows exactly her (action, resource) pairs.
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import unittest

import boto3

from common import (
    ACCOUNT, COMMAND_TIMEOUT_S, CP_HTTP, DATA_DIR, SIDECAR_GRPC, allow, eventually,
    iamlet, new_user, policy,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOG = os.path.join(DATA_DIR, "decisions.log")

# What she does: (action, resource), in order; repeats included on purpose.
CALLS = [
    ("s3:GetObject", "arn:aws:s3:::gen-reports/2026/q1.csv"),
    ("s3:GetObject", "arn:aws:s3:::gen-reports/2026/q2.csv"),
    ("s3:GetObject", "arn:aws:s3:::gen-reports/2026/q1.csv"),
    ("s3:PutObject", "arn:aws:s3:::gen-uploads/in.json"),
    ("s3:PutObject", "arn:aws:s3:::gen-uploads/in.json"),
    ("dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/gen-orders"),
    ("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:gen-queue"),
    ("s3:GetObject", "arn:aws:s3:::gen-reports/2026/q2.csv"),
]
# Denied by her policy: recorded, but never granted.
DENIED = ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/mallory")


def iso(at):
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class GeneratedPolicyFromTheDecisionLog(unittest.TestCase):
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
        cls.decisions = policy_pb2
        cls.channel = grpc.insecure_channel(SIDECAR_GRPC.removeprefix("http://"))
        cls.authorizer = authorizer_pb2_grpc.AuthorizerStub(cls.channel)

        # Before her first decision: the window starts here (whole seconds, so one back).
        cls.start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)
        name, _, _ = new_user(policy(allow(["s3:*", "dynamodb:*", "sqs:*"])))
        cls.alice = f"arn:aws:iam::{ACCOUNT}:user/{name}"

        def first():
            action, resource = CALLS[0]
            answer = cls.authorize(action, resource)
            if answer.decision != cls.decisions.ALLOW:
                raise AssertionError(f"not yet allowed: {answer.message}")

        # The sidecar has her once the first call is allowed (earlier denies do not count).
        eventually(first, "the sidecar allows the new user")
        for action, resource in CALLS[1:]:
            answer = cls.authorize(action, resource)
            assert answer.decision == cls.decisions.ALLOW, (action, resource, answer.message)
        answer = cls.authorize(*DENIED)
        assert answer.decision != cls.decisions.ALLOW, answer.message

        # The log is written off the request path: wait until the deny (the last call) is in.
        def logged():
            with open(LOG, encoding="utf-8") as f:
                mine = [json.loads(line) for line in f if cls.alice in line]
            if not any(r["action"] == DENIED[0] for r in mine):
                raise AssertionError(f"{len(mine)} of her records logged so far")

        eventually(logged, "the decision log holds her calls")

        cls.policy_file = os.path.join(cls.out.name, "generated.json")
        cls.generated = iamlet(
            "policy", "generate", "--principal", cls.alice, "--start-time", iso(cls.start),
            "--verify", LOG,
        )
        with open(cls.policy_file, "w", encoding="utf-8") as f:
            f.write(cls.generated.stdout)
        cls.document = json.loads(cls.generated.stdout)
        cls.iam = boto3.session.Session(profile_name="demo-admin", region_name="us-east-1").client(
            "iam", endpoint_url=CP_HTTP
        )

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        sys.path.remove(cls.out.name)
        cls.out.cleanup()

    @classmethod
    def authorize(cls, action, resource):
        return cls.authorizer.Authorize(
            cls.pb.AuthorizeRequest(principal_arn=cls.alice, action=action, resource=resource),
            timeout=10,
        )

    def simulate(self, action, resource):
        out = self.iam.simulate_custom_policy(
            PolicyInputList=[json.dumps(self.document)],
            ActionNames=[action],
            ResourceArns=[resource],
        )
        (result,) = out["EvaluationResults"]
        return result["EvalDecision"]

    def test_generate_verifies_every_decision_of_the_window(self):
        pairs = len(set(CALLS))
        self.assertIn(
            f"verified: the policy is valid and allows all {pairs} allowed decisions",
            self.generated.stderr,
        )
        self.assertEqual(self.document["Version"], "2012-10-17")

    def test_iamlet_policy_validate_accepts_it(self):
        done = iamlet("policy", "validate", self.policy_file)
        self.assertIn("valid identity policy", done.stdout)

    def test_it_is_least_privilege_statements_per_service(self):
        services = [
            {a.split(":")[0] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
            for s in self.document["Statement"]
        ]
        for actions in services:
            self.assertEqual(len(actions), 1, self.document)
        granted = set()
        for statement in self.document["Statement"]:
            self.assertEqual(statement["Effect"], "Allow")
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            granted |= {(a, r) for a in actions for r in resources}
        # Two objects of one bucket stay exact (below the threshold of three).
        self.assertEqual(granted, set(CALLS))

    def test_the_simulator_allows_exactly_her_pairs(self):
        for action, resource in sorted(set(CALLS)):
            self.assertEqual(self.simulate(action, resource), "allowed", (action, resource))
        for action, resource in [
            ("s3:DeleteObject", "arn:aws:s3:::gen-reports/2026/q1.csv"),
            ("s3:GetObject", "arn:aws:s3:::gen-reports/2026/q3.csv"),
            ("s3:PutObject", "arn:aws:s3:::gen-reports/2026/q1.csv"),
            ("dynamodb:PutItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/gen-orders"),
            ("sqs:SendMessage", f"arn:aws:sqs:eu-west-1:{ACCOUNT}:gen-queue"),
            DENIED,
        ]:
            self.assertEqual(self.simulate(action, resource), "implicitDeny", (action, resource))

    def test_an_empty_window_is_an_error(self):
        later = iso(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
        done = iamlet(
            "policy", "generate", "--principal", self.alice, "--start-time", later, LOG,
            check=False,
        )
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertEqual(done.stdout, "")
        self.assertIn(f"no allowed decision of `{self.alice}` from", done.stderr)

    def test_a_user_with_no_activity_gets_no_policy(self):
        done = iamlet(
            "policy", "generate", "--principal", f"arn:aws:iam::{ACCOUNT}:user/nobody-at-all", LOG,
            check=False,
        )
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("nothing to generate a policy from", done.stderr)


if __name__ == "__main__":
    unittest.main()
