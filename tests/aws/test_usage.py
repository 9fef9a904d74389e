"""Issue 17 through boto3 and the AWS CLI: last used, Access Advisor and the credential report.

Run by tests/aws/run.sh (see its contract). The sidecar side of usage reporting is another
change; here the control plane answers for credentials nobody used yet, as AWS does.
"""

import base64
import csv
import io
import os
import unittest
import uuid

import boto3
from botocore.exceptions import ClientError

from common import admin, unique

CP_HTTP = os.environ["IAMLET_CP_HTTP"]
ACCOUNT = os.environ.get("IAMLET_ACCOUNT", "111122223333")

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


def iam():
    session = boto3.session.Session(profile_name="demo-admin", region_name="us-east-1")
    return session.client("iam", endpoint_url=CP_HTTP)


class UsageAnswersAsAws(unittest.TestCase):
    def test_an_unused_key_reads_na(self):
        c = iam()
        name = unique("usage-user")
        c.create_user(UserName=name)
        key = c.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]
        got = c.get_access_key_last_used(AccessKeyId=key)
        self.assertEqual(got["UserName"], name)
        self.assertEqual(
            got["AccessKeyLastUsed"], {"ServiceName": "N/A", "Region": "N/A"}
        )
        # The AWS CLI look-alike says the same.
        out = admin("get-access-key-last-used", "--access-key-id", key)
        self.assertEqual(out["AccessKeyLastUsed"]["ServiceName"], "N/A")

    def test_the_credential_report_is_aws_csv_with_the_root_row_first(self):
        c = iam()
        name = unique("report-user")
        c.create_user(UserName=name)
        c.create_access_key(UserName=name)
        state = c.generate_credential_report()["State"]
        self.assertIn(state, ("STARTED", "COMPLETE"))
        if state == "COMPLETE":
            # A report younger than 4 hours is reused: this run's user may not be in it.
            name = None
        got = c.get_credential_report()
        self.assertEqual(got["ReportFormat"], "text/csv")
        self.assertIn("GeneratedTime", got)
        rows = list(csv.reader(io.StringIO(got["Content"].decode())))
        self.assertEqual(rows[0], COLUMNS)
        self.assertEqual(rows[1][:2], ["<root_account>", f"arn:aws:iam::{ACCOUNT}:root"])
        self.assertEqual(rows[1][3], "not_supported")
        for row in rows[1:]:
            self.assertEqual(len(row), len(COLUMNS), row)
        if name:
            mine = [r for r in rows if r[0] == name]
            self.assertEqual(len(mine), 1, rows)
            self.assertEqual(mine[0][8], "true")
            self.assertEqual(mine[0][10:13], ["N/A", "N/A", "N/A"])
        self.assertEqual(c.generate_credential_report()["State"], "COMPLETE")

    def test_access_advisor_lists_the_services_a_user_may_use(self):
        c = iam()
        name = unique("advisor-user")
        c.create_user(UserName=name)
        c.put_user_policy(
            UserName=name,
            PolicyName="read",
            PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
            '"Action":["s3:GetObject","iam:GetUser"],"Resource":"*"}]}',
        )
        arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
        job = c.generate_service_last_accessed_details(Arn=arn, Granularity="ACTION_LEVEL")
        got = c.get_service_last_accessed_details(JobId=job["JobId"])
        self.assertEqual(got["JobStatus"], "COMPLETED")
        self.assertEqual(got["JobType"], "ACTION_LEVEL")
        spaces = [s["ServiceNamespace"] for s in got["ServicesLastAccessed"]]
        self.assertEqual(spaces, ["iam", "s3"])
        for service in got["ServicesLastAccessed"]:
            self.assertEqual(service["TotalAuthenticatedEntities"], 0)
            self.assertNotIn("LastAuthenticated", service)
        s3 = got["ServicesLastAccessed"][1]
        self.assertEqual(s3["TrackedActionsLastAccessed"], [{"ActionName": "GetObject"}])
        entities = c.get_service_last_accessed_details_with_entities(
            JobId=job["JobId"], ServiceNamespace="s3"
        )
        self.assertEqual(entities["EntityDetailsList"][0]["EntityInfo"]["Arn"], arn)
        with self.assertRaises(ClientError) as e:
            c.get_service_last_accessed_details(JobId=str(uuid.uuid4()))
        self.assertEqual(e.exception.response["Error"]["Code"], "NoSuchEntity")


if __name__ == "__main__":
    unittest.main()
