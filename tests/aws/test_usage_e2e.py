"""Issue 17 end to end over the real processes: alice's key is used through the sidecar's
Authorize, the sidecar ships the usage on its sync stream, and the control plane answers
`GetAccessKeyLastUsed`, the credential report and Access Advisor from it; the account password
policy is enforced.

Run by tests/aws/run.sh (see its contract), which starts `iamlet up` with the sidecar shipping
usage every IAMLET_USAGE_INTERVAL_S seconds. Everything happens in a tenant of its own, made
with the operator's `iamlet admin create-tenant`: its credential report is its first (a
report is reused for 4 hours, so one another test generated in the demo tenant would not show
this test's uses) and its password policy binds no other test.
"""

import csv
import datetime
import io
import os
import random
import subprocess
import sys
import tempfile
import time
import unittest

from botocore.exceptions import ClientError

from common import (
    COMMAND_TIMEOUT_S,
    CP_HTTP,
    PATIENCE_S,
    SIDECAR_GRPC,
    admin,
    error_code,
    eventually,
    keys_session,
    policy,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTERVAL_S = float(os.environ["IAMLET_USAGE_INTERVAL_S"])

# AWS's columns, in AWS's order (IAM User Guide, "Getting credential reports").
COLUMNS = [
    "user", "arn", "user_creation_time", "password_enabled", "password_last_used",
    "password_last_changed", "password_next_rotation", "mfa_active", "access_key_1_active",
    "access_key_1_last_rotated", "access_key_1_last_used_date",
    "access_key_1_last_used_region", "access_key_1_last_used_service", "access_key_2_active",
    "access_key_2_last_rotated", "access_key_2_last_used_date",
    "access_key_2_last_used_region", "access_key_2_last_used_service", "cert_1_active",
    "cert_1_last_rotated", "cert_2_active", "cert_2_last_rotated",
]

# Alice may read the e2e bucket and the orders table, and look herself up (granted, never
# used here: Access Advisor lists it as not accessed).
ALICE_POLICY = policy(
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::e2e-data/*"},
    {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"},
    {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"},
)


def grpc_stubs(out_dir):
    """The Python gRPC client generated from proto/ (as test_clients.py does): the
    authorizer and policy message modules and an Authorizer stub on the suite's sidecar."""
    protos = sorted(
        os.path.join("proto", "iamlet", "v1", name)
        for name in os.listdir(os.path.join(REPO, "proto", "iamlet", "v1"))
        if name.endswith(".proto")
    )
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "proto",
         f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos],
        cwd=REPO, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"grpc_tools.protoc failed: {done.stderr}")
    sys.path.insert(0, out_dir)
    import grpc
    from iamlet.v1 import authorizer_pb2, authorizer_pb2_grpc, policy_pb2

    channel = grpc.insecure_channel(SIDECAR_GRPC.removeprefix("http://"))
    return grpc, authorizer_pb2, policy_pb2, channel, authorizer_pb2_grpc.AuthorizerStub(channel)


def whole_second(moment):
    """A datetime (aware) as whole Unix seconds."""
    return int(moment.timestamp())


class UsageEndToEnd(unittest.TestCase):
    """One tenant; alice's key used twice through the sidecar (DynamoDB in eu-west-1, then S3
    in eu-west-3, a second later), each waited for at the control plane."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.TemporaryDirectory()
        (cls.grpc, cls.pb, cls.policy_pb, cls.channel, cls.authorizer) = grpc_stubs(
            cls.out.name
        )
        # A fresh account id: twelve digits, away from the demo tenant's.
        cls.account = str(random.randrange(200_000_000_000, 999_999_999_999))
        created = admin("create-tenant", "--account-id", cls.account, profile="iamlet-operator")
        root = created["RootAccessKey"]
        cls.iam = keys_session(root["AccessKeyId"], root["SecretAccessKey"]).client(
            "iam", endpoint_url=CP_HTTP
        )
        cls.iam.create_user(UserName="alice")
        cls.alice_arn = f"arn:aws:iam::{cls.account}:user/alice"
        cls.iam.put_user_policy(UserName="alice", PolicyName="work", PolicyDocument=ALICE_POLICY)
        key = cls.iam.create_access_key(UserName="alice")["AccessKey"]
        cls.key_id, cls.secret = key["AccessKeyId"], key["SecretAccessKey"]

        # First use: DynamoDB, its region from the table's ARN. The sidecar learns the new
        # tenant and key from the stream; until then the key is unknown (no decision, no use).
        table = f"arn:aws:dynamodb:eu-west-1:{cls.account}:table/orders"
        cls.first = eventually(
            lambda: cls.use("dynamodb:GetItem", table),
            "the sidecar knows alice's key",
            retry_on=(cls.grpc.RpcError,),
        )
        cls.wait_for_service("dynamodb")
        # Second use, in a later second so that it is the key's latest: S3, whose ARNs name
        # no region, in the region the request names.
        while time.time() < cls.first[1] + 1:
            time.sleep(0.05)
        cls.second = cls.use(
            "s3:GetObject", "arn:aws:s3:::e2e-data/q4.csv", region="eu-west-3"
        )
        cls.last_used, waited = cls.wait_for_service("s3")
        print(
            f"\nusage e2e: the S3 use showed at the control plane {waited:.2f} s after it "
            f"was decided (shipped every {INTERVAL_S:g} s)",
            file=sys.stderr,
        )

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        sys.path.remove(cls.out.name)
        cls.out.cleanup()

    @classmethod
    def use(cls, action, resource, region=None):
        """Authorize as alice by key and secret; (whole second before, whole second after),
        after checking it was allowed."""
        context = {}
        if region:
            context["aws:RequestedRegion"] = cls.pb.ContextValue(string_value=region)
        before = int(time.time())
        answer = cls.authorizer.Authorize(
            cls.pb.AuthorizeRequest(
                credentials=cls.pb.Credentials(
                    access_key_id=cls.key_id, secret_access_key=cls.secret
                ),
                action=action,
                resource=resource,
                context=context,
            ),
            timeout=10,
        )
        after = int(time.time()) + 1
        if answer.decision != cls.policy_pb.ALLOW:
            raise AssertionError(f"{action} on {resource}: {answer.message}")
        return before, after

    @classmethod
    def wait_for_service(cls, service):
        """Polls GetAccessKeyLastUsed (bounded) until it names `service`; (its answer, the
        seconds the wait took)."""
        started = time.monotonic()
        deadline = started + PATIENCE_S
        while True:
            got = cls.iam.get_access_key_last_used(AccessKeyId=cls.key_id)
            if got["AccessKeyLastUsed"]["ServiceName"] == service:
                return got, time.monotonic() - started
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"GetAccessKeyLastUsed did not name {service} within {PATIENCE_S} s "
                    f"(usage is shipped every {INTERVAL_S} s): {got}"
                )
            time.sleep(0.1)

    def test_get_access_key_last_used_shows_the_latest_use_its_service_and_region(self):
        got = self.last_used
        self.assertEqual(got["UserName"], "alice")
        last = got["AccessKeyLastUsed"]
        self.assertEqual((last["ServiceName"], last["Region"]), ("s3", "eu-west-3"))
        # The time of the use itself, to the second: not the time it was shipped or merged.
        before, after = self.second
        self.assertLessEqual(before, whole_second(last["LastUsedDate"]))
        self.assertLess(whole_second(last["LastUsedDate"]), after)
        # The AWS CLI look-alike reads the same.
        out = admin(
            "get-access-key-last-used", "--tenant", self.account,
            "--access-key-id", self.key_id, profile="iamlet-operator",
        )
        self.assertEqual(out["AccessKeyLastUsed"]["ServiceName"], "s3")
        self.assertEqual(out["AccessKeyLastUsed"]["Region"], "eu-west-3")

    def test_the_credential_report_carries_the_keys_last_use(self):
        state = self.iam.generate_credential_report()["State"]
        # The tenant's first report: generated now, after both uses were reported.
        self.assertEqual(state, "STARTED")
        got = self.iam.get_credential_report()
        self.assertEqual(got["ReportFormat"], "text/csv")
        rows = list(csv.reader(io.StringIO(got["Content"].decode())))
        self.assertEqual(rows[0], COLUMNS)
        self.assertEqual(
            rows[1][:2], ["<root_account>", f"arn:aws:iam::{self.account}:root"]
        )
        by_user = {row[0]: dict(zip(COLUMNS, row)) for row in rows[1:]}
        for row in rows[1:]:
            self.assertEqual(len(row), len(COLUMNS), row)
        alice = by_user["alice"]
        self.assertEqual(alice["arn"], self.alice_arn)
        self.assertEqual(alice["password_enabled"], "false")
        self.assertEqual(alice["access_key_1_active"], "true")
        used = datetime.datetime.fromisoformat(alice["access_key_1_last_used_date"])
        self.assertEqual(used, self.last_used["AccessKeyLastUsed"]["LastUsedDate"])
        self.assertEqual(alice["access_key_1_last_used_region"], "eu-west-3")
        self.assertEqual(alice["access_key_1_last_used_service"], "s3")
        self.assertEqual(
            [alice[c] for c in COLUMNS[13:18]], ["false", "N/A", "N/A", "N/A", "N/A"]
        )

    def test_access_advisor_lists_the_services_used_and_those_granted_but_not(self):
        job = self.iam.generate_service_last_accessed_details(
            Arn=self.alice_arn, Granularity="ACTION_LEVEL"
        )
        got = eventually(
            lambda: self.completed(job["JobId"]), "the Access Advisor job completes"
        )
        services = {s["ServiceNamespace"]: s for s in got["ServicesLastAccessed"]}
        self.assertEqual(sorted(services), ["dynamodb", "iam", "s3"])
        for namespace, (before, after), region in (
            ("dynamodb", self.first, "eu-west-1"),
            ("s3", self.second, "eu-west-3"),
        ):
            service = services[namespace]
            self.assertEqual(service["TotalAuthenticatedEntities"], 1, service)
            self.assertEqual(service["LastAuthenticatedEntity"], self.alice_arn)
            self.assertEqual(service["LastAuthenticatedRegion"], region)
            at = whole_second(service["LastAuthenticated"])
            self.assertTrue(before <= at < after, (namespace, at, before, after))
        # Granted, never used: listed without a last access.
        self.assertEqual(services["iam"]["TotalAuthenticatedEntities"], 0)
        self.assertNotIn("LastAuthenticated", services["iam"])
        # S3 is tracked at action level: GetObject, where and when.
        tracked = {a["ActionName"]: a for a in services["s3"]["TrackedActionsLastAccessed"]}
        get_object = tracked["GetObject"]
        self.assertEqual(get_object["LastAccessedRegion"], "eu-west-3")
        self.assertEqual(get_object["LastAccessedEntity"], self.alice_arn)
        self.assertEqual(
            get_object["LastAccessedTime"], services["s3"]["LastAuthenticated"]
        )
        # The entities behind a service: alice, with her last access.
        entities = self.iam.get_service_last_accessed_details_with_entities(
            JobId=job["JobId"], ServiceNamespace="dynamodb"
        )["EntityDetailsList"]
        self.assertEqual([e["EntityInfo"]["Arn"] for e in entities], [self.alice_arn])
        self.assertEqual(
            entities[0]["LastAuthenticated"], services["dynamodb"]["LastAuthenticated"]
        )

    def completed(self, job_id):
        got = self.iam.get_service_last_accessed_details(JobId=job_id)
        if got["JobStatus"] != "COMPLETED":
            raise AssertionError(f"job {job_id} is {got['JobStatus']}")
        return got

    def test_a_password_that_breaks_the_policy_is_refused_with_aws_message(self):
        self.iam.update_account_password_policy(
            MinimumPasswordLength=14,
            RequireSymbols=True,
            RequireNumbers=True,
            RequireUppercaseCharacters=True,
            RequireLowercaseCharacters=True,
        )
        self.addCleanup(self.iam.delete_account_password_policy)
        got = self.iam.get_account_password_policy()["PasswordPolicy"]
        self.assertEqual(got["MinimumPasswordLength"], 14)
        self.iam.create_user(UserName="bob")
        for weak in ("Short1!a", "no-digits-or-CAPITALS!", "NoSymbolsAtAll1234"):
            with self.assertRaises(ClientError) as refused:
                self.iam.create_login_profile(UserName="bob", Password=weak)
            self.assertEqual(error_code(refused.exception), "PasswordPolicyViolation")
            self.assertEqual(
                refused.exception.response["Error"]["Message"],
                "Password does not conform to the account password policy.",
            )
        # The AWS CLI look-alike is refused the same way, and nothing was created.
        done = subprocess.run(
            [os.environ["IAMLET_BIN"], "admin", "--endpoint", os.environ["IAMLET_CP_GRPC"],
             "--profile", "iamlet-operator", "create-login-profile", "--tenant", self.account,
             "--user-name", "bob", "--password", "Short1!a"],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("PasswordPolicyViolation", done.stderr)
        with self.assertRaises(ClientError) as missing:
            self.iam.get_login_profile(UserName="bob")
        self.assertEqual(error_code(missing.exception), "NoSuchEntity")
        # One that conforms is accepted.
        self.iam.create_login_profile(UserName="bob", Password="Correct-Horse-42-Battery")
        self.assertEqual(
            self.iam.get_login_profile(UserName="bob")["LoginProfile"]["UserName"], "bob"
        )


if __name__ == "__main__":
    unittest.main()
