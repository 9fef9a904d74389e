"""Issue 18: the policy simulator (`SimulatePrincipalPolicy`, `SimulateCustomPolicy`,
`GetContextKeysFor*Policy`) through boto3 over the Query protocol, parsed by botocore with
AWS's model, and through the AWS CLI's own verbs."""

import json
import unittest

import boto3
from botocore.exceptions import ClientError

from common import ACCOUNT, CP_HTTP, allow, policy, run, unique

PROFILE = "demo-admin"


def iam():
    session = boto3.session.Session(profile_name=PROFILE, region_name="us-east-1")
    return session.client("iam", endpoint_url=CP_HTTP)


# AWS's own example (AWS CLI reference, simulate-custom-policy), with its answer.
DYNAMO = (
    '{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*",'
    '"Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}'
)


class Simulator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = iam()

    def test_custom_policy_answers_as_awss_example(self):
        out = self.c.simulate_custom_policy(
            PolicyInputList=[DYNAMO],
            ActionNames=["dynamodb:CreateBackup"],
            ContextEntries=[
                {
                    "ContextKeyName": "aws:CurrentTime",
                    "ContextKeyValues": ["2019-04-25T11:00:00Z"],
                    "ContextKeyType": "date",
                }
            ],
        )
        result = out["EvaluationResults"][0]
        self.assertEqual(result["EvalDecision"], "allowed")
        self.assertEqual(result["EvalResourceName"], "*")
        self.assertEqual(
            result["MatchedStatements"],
            [
                {
                    "SourcePolicyId": "PolicyInputList.1",
                    "SourcePolicyType": "IAM Policy",
                    "StartPosition": {"Line": 1, "Column": 38},
                    "EndPosition": {"Line": 1, "Column": 167},
                }
            ],
        )
        self.assertEqual(result["MissingContextValues"], [])
        self.assertFalse(out["IsTruncated"])

    def test_principal_policy_resources_details_and_pages(self):
        user = unique("sim-user")
        self.c.create_user(UserName=user)
        self.c.put_user_policy(
            UserName=user,
            PolicyName="reads",
            PolicyDocument=policy(allow("s3:GetObject", "arn:aws:s3:::reports/*")),
        )
        arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
        bucket = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": arn},
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::reports/*",
                    }
                ],
            }
        )
        out = self.c.simulate_principal_policy(
            PolicySourceArn=arn,
            ActionNames=["s3:GetObject", "s3:PutObject"],
            ResourceArns=["arn:aws:s3:::reports/a", "arn:aws:s3:::other/b"],
            ResourcePolicy=bucket,
            ResourceOwner="arn:aws:iam::444455556666:root",
            MaxItems=1,
        )
        self.assertTrue(out["IsTruncated"])
        get = out["EvaluationResults"][0]
        self.assertEqual(get["EvalActionName"], "s3:GetObject")
        specific = {r["EvalResourceName"]: r for r in get["ResourceSpecificResults"]}
        self.assertEqual(specific["arn:aws:s3:::reports/a"]["EvalResourceDecision"], "allowed")
        self.assertEqual(
            specific["arn:aws:s3:::reports/a"]["EvalDecisionDetails"],
            {"IAM Policy": "allowed", "Resource Policy": "allowed"},
        )
        self.assertEqual(specific["arn:aws:s3:::other/b"]["EvalResourceDecision"], "implicitDeny")
        self.assertEqual(get["EvalDecision"], "implicitDeny")
        rest = self.c.simulate_principal_policy(
            PolicySourceArn=arn,
            ActionNames=["s3:GetObject", "s3:PutObject"],
            ResourceArns=["arn:aws:s3:::reports/a", "arn:aws:s3:::other/b"],
            ResourcePolicy=bucket,
            ResourceOwner="arn:aws:iam::444455556666:root",
            MaxItems=1,
            Marker=out["Marker"],
        )
        self.assertFalse(rest["IsTruncated"])
        self.assertEqual(rest["EvaluationResults"][0]["EvalActionName"], "s3:PutObject")
        self.assertEqual(rest["EvaluationResults"][0]["EvalDecision"], "implicitDeny")

    def test_context_keys(self):
        out = self.c.get_context_keys_for_custom_policy(
            PolicyInputList=[
                DYNAMO,
                policy(
                    {
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": "arn:aws:s3:::home",
                        "Condition": {"StringLike": {"s3:prefix": "${aws:username}/*"}},
                    }
                ),
            ]
        )
        self.assertEqual(
            out["ContextKeyNames"], ["aws:CurrentTime", "aws:username", "s3:prefix"]
        )

    def test_errors_are_awss(self):
        with self.assertRaises(ClientError) as caught:
            self.c.simulate_principal_policy(
                PolicySourceArn=f"arn:aws:iam::{ACCOUNT}:user/{unique('nobody')}",
                ActionNames=["s3:GetObject"],
            )
        self.assertEqual(caught.exception.response["Error"]["Code"], "NoSuchEntity")
        with self.assertRaises(ClientError) as caught:
            self.c.simulate_custom_policy(PolicyInputList=["{"], ActionNames=["s3:GetObject"])
        self.assertEqual(caught.exception.response["Error"]["Code"], "InvalidInput")

    def test_the_aws_cli_verb_with_shorthand_context_entries(self):
        done = run(
            [
                "aws", "iam", "simulate-custom-policy",
                "--endpoint-url", CP_HTTP,
                "--profile", PROFILE,
                "--policy-input-list", DYNAMO,
                "--action-names", "dynamodb:CreateBackup",
                "--context-entries",
                "ContextKeyName='aws:CurrentTime',ContextKeyValues='2018-04-25T11:00:00Z',ContextKeyType=date",
            ]
        )
        result = json.loads(done.stdout)["EvaluationResults"][0]
        self.assertEqual(result["EvalDecision"], "implicitDeny")
        self.assertEqual(result["MatchedStatements"], [])


if __name__ == "__main__":
    unittest.main()
