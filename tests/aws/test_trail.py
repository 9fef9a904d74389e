"""Issue 17, item 7 over the real processes: activity shaped like CloudTrail.

alice (a fresh user with a key and permission to assume a role) calls AssumeRole through the
sidecar with an unmodified boto3 STS client; the sidecar ships the event to the control plane
(at the suite's usage interval), `iamlet admin lookup-events` finds it by EventName with her
access key id and user name, and `iamlet admin export-trail` writes it in CloudTrail's record
format with her access key id and neither the returned secret key nor the session token (nor
her own secret, nor a password set through the admin API) anywhere in the file.
"""

import json
import time
import unittest

import common
from common import ACCOUNT

# The suite's `iamlet up` ships usage and events every second; a few intervals suffice.
SHIPPING_PATIENCE_S = 30


def lookup(*args):
    return common.admin("lookup-events", *args)


class AssumeRoleIsInTheTrail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user, cls.key_id, cls.secret = common.new_user(
            common.policy(common.allow("sts:AssumeRole"))
        )
        trust = common.policy({
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{cls.user}"},
            "Action": "sts:AssumeRole",
        })
        cls.role_arn = common.new_role(trust, common.policy(common.allow("s3:GetObject")))
        # A password set through the admin API: it must not reach the trail either.
        cls.password = "Tr4il-" + common.unique("pw")
        common.admin(
            "create-login-profile", "--user-name", cls.user, "--password", cls.password
        )
        client = common.sts(common.keys_session(cls.key_id, cls.secret))
        session_name = common.unique("trail")[:60]
        # The sidecar serves the user once the control plane's change reaches it.
        cls.answer = common.eventually(
            lambda: client.assume_role(RoleArn=cls.role_arn, RoleSessionName=session_name),
            "alice's AssumeRole through the sidecar",
        )
        cls.session_name = session_name

    def find_mine(self):
        """Her AssumeRole among the tenant's AssumeRole events (the admin API pages them)."""
        deadline = time.monotonic() + SHIPPING_PATIENCE_S
        while True:
            out = lookup(
                "--lookup-attributes", "AttributeKey=EventName,AttributeValue=AssumeRole"
            )
            mine = [e for e in out["Events"] if e.get("AccessKeyId") == self.key_id]
            if mine:
                return mine
            if time.monotonic() > deadline:
                self.fail(f"alice's AssumeRole not in lookup-events after {SHIPPING_PATIENCE_S} s")
            time.sleep(0.5)

    def test_lookup_events_finds_her_assume_role(self):
        mine = self.find_mine()
        self.assertEqual(len(mine), 1, mine)
        event = mine[0]
        self.assertEqual(event["EventName"], "AssumeRole")
        self.assertEqual(event["EventSource"], "sts.amazonaws.com")
        self.assertEqual(event["Username"], self.user)
        self.assertEqual(event["ReadOnly"], "true")
        self.assertIn(
            {"ResourceType": "AWS::IAM::Role", "ResourceName": self.role_arn},
            event["Resources"],
        )
        record = json.loads(event["CloudTrailEvent"])
        self.assertEqual(record["eventVersion"], "1.08")
        self.assertEqual(record["userIdentity"]["type"], "IAMUser")
        self.assertEqual(record["userIdentity"]["accessKeyId"], self.key_id)
        self.assertEqual(record["userIdentity"]["userName"], self.user)
        self.assertEqual(record["requestParameters"]["roleArn"], self.role_arn)
        self.assertEqual(record["requestParameters"]["roleSessionName"], self.session_name)
        self.assertEqual(
            record["responseElements"]["credentials"]["accessKeyId"],
            self.answer["Credentials"]["AccessKeyId"],
        )
        self.assertEqual(
            record["responseElements"]["assumedRoleUser"]["arn"],
            self.answer["AssumedRoleUser"]["Arn"],
        )
        self.assertEqual(record["recipientAccountId"], ACCOUNT)
        self.assertIn("Boto3", record.get("userAgent", ""))
        # The other attributes find it too; one attribute per call, as CloudTrail.
        for key, value in [
            ("AccessKeyId", self.key_id),
            ("Username", self.user),
            ("EventId", event["EventId"]),
            ("ResourceName", self.role_arn),
        ]:
            out = lookup("--lookup-attributes", f"AttributeKey={key},AttributeValue={value}")
            self.assertIn(event["EventId"], [e["EventId"] for e in out["Events"]], key)

    def test_the_admin_changes_are_iam_events(self):
        # The demo-admin profile is the tenant's IAM user `admin`.
        out = lookup("--lookup-attributes", "AttributeKey=Username,AttributeValue=admin")
        names = {e["EventName"] for e in out["Events"]}
        self.assertIn("CreateUser", names)
        created = [
            json.loads(e["CloudTrailEvent"])
            for e in out["Events"]
            if e["EventName"] == "CreateLoginProfile"
        ]
        self.assertTrue(created)
        for record in created:
            self.assertEqual(record["eventSource"], "iam.amazonaws.com")
            self.assertFalse(record["readOnly"])

    def test_two_lookup_attributes_are_refused_as_cloudtrail_does(self):
        done = common.run(
            [
                common.BIN, "admin", "--endpoint", common.CP_GRPC, "--profile", "demo-admin",
                "lookup-events", "--lookup-attributes",
                "AttributeKey=EventName,AttributeValue=AssumeRole",
                "AttributeKey=Username,AttributeValue=x",
            ],
            check=False,
        )
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("InvalidLookupAttributesException", done.stderr)

    def test_the_export_has_it_and_no_secret(self):
        self.find_mine()
        done = common.run(
            [
                common.BIN, "admin", "--endpoint", common.CP_GRPC, "--profile", "demo-admin",
                "export-trail", "--tenant", ACCOUNT,
            ]
        )
        text = done.stdout
        records = [json.loads(line) for line in text.splitlines()]
        mine = [
            r for r in records
            if r["eventName"] == "AssumeRole"
            and r["userIdentity"].get("accessKeyId") == self.key_id
        ]
        self.assertEqual(len(mine), 1)
        for field in [
            "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName",
            "awsRegion", "requestParameters", "responseElements", "eventID", "readOnly",
            "eventType", "managementEvent", "recipientAccountId", "eventCategory",
        ]:
            self.assertIn(field, mine[0], field)
        self.assertTrue(mine[0]["eventTime"].endswith("Z"))
        # Oldest first, as a trail file reads.
        times = [r["eventTime"] for r in records]
        self.assertEqual(times, sorted(times))
        credentials = self.answer["Credentials"]
        for secret in (
            credentials["SecretAccessKey"],
            credentials["SessionToken"],
            self.secret,
            self.password,
        ):
            self.assertNotIn(secret, text)


if __name__ == "__main__":
    unittest.main()
