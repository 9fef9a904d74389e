"""Account-wide IAM operations through boto3 and the AWS CLI, parsed by botocore's own models:
the account password policy (and its enforcement on console passwords),
GetAccountSummary, GetAccountAuthorizationDetails (with its paginator) and
ListPoliciesGrantingServiceAccess.

The password policy is account-wide: the test that sets it deletes it again before it ends,
so the other files never meet it.
"""

import json
import sys
import unittest

import boto3
import botocore.config
from botocore.exceptions import ClientError

from common import ACCOUNT, CP_HTTP, allow, policy, run, unique

PROFILE = "demo-admin"


def iam(**config):
    session = boto3.session.Session(profile_name=PROFILE, region_name="us-east-1")
    return session.client(
        "iam", endpoint_url=CP_HTTP, config=botocore.config.Config(**config)
    )


def code_and_message(caught):
    error = caught.exception.response["Error"]
    return error["Code"], error["Message"]


class PasswordPolicy(unittest.TestCase):
    def setUp(self):
        self.iam = iam()

    def tearDown(self):
        try:
            self.iam.delete_account_password_policy()
        except ClientError as e:
            if e.response["Error"]["Code"] != "NoSuchEntity":
                raise

    def test_set_read_enforce_delete(self):
        c = self.iam
        with self.assertRaises(ClientError) as caught:
            c.get_account_password_policy()
        self.assertEqual(
            code_and_message(caught),
            (
                "NoSuchEntity",
                f"The Password Policy with domain name {ACCOUNT} cannot be found.",
            ),
        )
        c.update_account_password_policy(
            MinimumPasswordLength=14,
            RequireNumbers=True,
            RequireSymbols=True,
            PasswordReusePrevention=3,
            MaxPasswordAge=90,
        )
        got = c.get_account_password_policy()["PasswordPolicy"]
        self.assertEqual(
            got,
            {
                "MinimumPasswordLength": 14,
                "RequireSymbols": True,
                "RequireNumbers": True,
                "RequireUppercaseCharacters": False,
                "RequireLowercaseCharacters": False,
                "AllowUsersToChangePassword": False,
                "ExpirePasswords": True,
                "MaxPasswordAge": 90,
                "PasswordReusePrevention": 3,
            },
        )
        # The AWS CLI prints the same.
        done = run(
            [
                sys.executable, "-m", "awscli", "iam", "get-account-password-policy",
                "--endpoint-url", CP_HTTP, "--profile", PROFILE, "--output", "json",
            ]
        )
        self.assertEqual(json.loads(done.stdout)["PasswordPolicy"], got)

        user = unique("pp-user")
        c.create_user(UserName=user)
        with self.assertRaises(ClientError) as caught:
            c.create_login_profile(UserName=user, Password="Short-1!")
        self.assertEqual(
            code_and_message(caught),
            (
                "PasswordPolicyViolation",
                "Password does not conform to the account password policy.",
            ),
        )
        c.create_login_profile(UserName=user, Password="long-enough-pw-1!")
        with self.assertRaises(ClientError) as caught:
            c.update_login_profile(UserName=user, Password="long-enough-pw-1!")
        self.assertEqual(code_and_message(caught)[0], "PasswordPolicyViolation")

        # botocore refuses the value itself; the service must too.
        unchecked = iam(parameter_validation=False)
        with self.assertRaises(ClientError) as caught:
            unchecked.update_account_password_policy(MinimumPasswordLength=5)
        self.assertEqual(code_and_message(caught)[0], "ValidationError")
        self.assertIn("minimumPasswordLength", code_and_message(caught)[1])

        c.delete_account_password_policy()
        with self.assertRaises(ClientError) as caught:
            c.delete_account_password_policy()
        self.assertEqual(code_and_message(caught)[0], "NoSuchEntity")


class AccountViews(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.iam = iam()
        c = cls.iam
        cls.user = unique("av-user")
        cls.group = unique("av-group")
        c.create_user(UserName=cls.user, Path="/views/")
        c.create_group(GroupName=cls.group)
        c.add_user_to_group(GroupName=cls.group, UserName=cls.user)
        c.put_user_policy(
            UserName=cls.user,
            PolicyName="own",
            PolicyDocument=policy(allow("s3:GetObject")),
        )
        c.put_group_policy(
            GroupName=cls.group,
            PolicyName="team",
            PolicyDocument=policy(allow("sqs:SendMessage")),
        )
        c.attach_user_policy(
            UserName=cls.user,
            PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        )
        cls.user_arn = c.get_user(UserName=cls.user)["User"]["Arn"]

    def test_summary_map(self):
        summary = self.iam.get_account_summary()["SummaryMap"]
        for key in ("Users", "UsersQuota", "Roles", "Policies", "PolicySizeQuota",
                    "AccountMFAEnabled", "GlobalEndpointTokenVersion"):
            self.assertIsInstance(summary.get(key), int, key)
        self.assertGreaterEqual(summary["Users"], 1)
        self.assertEqual(summary["UsersQuota"], 5000)

    def test_authorization_details_page_and_decode_documents(self):
        paginator = self.iam.get_paginator("get_account_authorization_details")
        pages = list(
            paginator.paginate(Filter=["User", "Group"], PaginationConfig={"PageSize": 1})
        )
        self.assertGreater(len(pages), 1)
        users = [u for p in pages for u in p["UserDetailList"]]
        groups = [g for p in pages for g in p["GroupDetailList"]]
        self.assertFalse(any(p["RoleDetailList"] or p["Policies"] for p in pages))
        mine = [u for u in users if u["UserName"] == self.user]
        self.assertEqual(len(mine), 1)
        detail = mine[0]
        self.assertEqual(detail["Path"], "/views/")
        self.assertEqual(detail["GroupList"], [self.group])
        # botocore decodes the URL-encoded document into a dict, as for GetUserPolicy.
        self.assertEqual(
            detail["UserPolicyList"],
            [{"PolicyName": "own", "PolicyDocument": json.loads(policy(allow("s3:GetObject")))}],
        )
        self.assertEqual(
            detail["AttachedManagedPolicies"],
            [{
                "PolicyName": "AmazonS3ReadOnlyAccess",
                "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            }],
        )
        self.assertIn(self.group, [g["GroupName"] for g in groups])
        aws = self.iam.get_account_authorization_details(Filter=["AWSManagedPolicy"])
        arns = [p["Arn"] for p in aws["Policies"]]
        self.assertIn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess", arns)
        for p in aws["Policies"]:
            self.assertTrue(p["AttachmentCount"] > 0 or p["PermissionsBoundaryUsageCount"] > 0)
            self.assertIsInstance(p["PolicyVersionList"][0]["Document"], dict)

    def test_policies_granting_service_access(self):
        out = self.iam.list_policies_granting_service_access(
            Arn=self.user_arn, ServiceNamespaces=["s3", "sqs", "ec2"]
        )
        by_ns = {e["ServiceNamespace"]: e["Policies"] for e in out["PoliciesGrantingServiceAccess"]}
        self.assertEqual(
            by_ns["s3"],
            [
                {"PolicyName": "own", "PolicyType": "INLINE", "EntityType": "USER",
                 "EntityName": self.user},
                {"PolicyName": "AmazonS3ReadOnlyAccess", "PolicyType": "MANAGED",
                 "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"},
            ],
        )
        self.assertEqual(
            by_ns["sqs"],
            [{"PolicyName": "team", "PolicyType": "INLINE", "EntityType": "GROUP",
              "EntityName": self.group}],
        )
        self.assertEqual(by_ns["ec2"], [])
        with self.assertRaises(ClientError) as caught:
            self.iam.list_policies_granting_service_access(
                Arn=f"arn:aws:iam::{ACCOUNT}:user/{unique('nobody')}",
                ServiceNamespaces=["s3"],
            )
        self.assertEqual(code_and_message(caught)[0], "NoSuchEntity")


if __name__ == "__main__":
    unittest.main()
