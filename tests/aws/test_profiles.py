"""Instance profiles, service-linked roles and STS preferences through boto3 (IAM's Query
API on the control plane's HTTP edge) and `iamlet admin`.

Run by tests/aws/run.sh (see its contract). Every test makes what it needs under unique
names, so the files run in any order.
"""

import json
import unittest
import urllib.parse

import boto3
from botocore.exceptions import ClientError

from common import ACCOUNT, CP_HTTP, admin, unique

TRUST_DOC = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})


def iam():
    session = boto3.session.Session(profile_name="demo-admin", region_name="us-east-1")
    return session.client("iam", endpoint_url=CP_HTTP)


class InstanceProfiles(unittest.TestCase):
    def test_a_profile_holds_one_role_as_in_aws(self):
        client = iam()
        role, other, name = unique("ip-role"), unique("ip-other"), unique("profile")
        for r in (role, other):
            client.create_role(RoleName=r, AssumeRolePolicyDocument=TRUST_DOC)
        created = client.create_instance_profile(
            InstanceProfileName=name, Path="/ec2/", Tags=[{"Key": "env", "Value": "prod"}]
        )["InstanceProfile"]
        self.assertEqual(created["Arn"], f"arn:aws:iam::{ACCOUNT}:instance-profile/ec2/{name}")
        self.assertTrue(created["InstanceProfileId"].startswith("AIPA"))
        self.assertEqual(created["Roles"], [])

        client.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
        got = client.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
        self.assertEqual([r["RoleName"] for r in got["Roles"]], [role])
        # The embedded role's trust policy decodes as AWS's does (URL-encoded on the wire).
        document = got["Roles"][0]["AssumeRolePolicyDocument"]
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        self.assertEqual(document, json.loads(TRUST_DOC))
        self.assertEqual(got["Tags"], [{"Key": "env", "Value": "prod"}])

        with self.assertRaises(ClientError) as refused:
            client.add_role_to_instance_profile(InstanceProfileName=name, RoleName=other)
        self.assertEqual(refused.exception.response["Error"]["Code"], "LimitExceeded")
        self.assertIn("InstanceSessionsPerInstanceProfile: 1",
                      refused.exception.response["Error"]["Message"])
        with self.assertRaises(ClientError) as conflict:
            client.delete_role(RoleName=role)
        self.assertEqual(conflict.exception.response["Error"]["Code"], "DeleteConflict")

        listed = client.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
        self.assertEqual([p["InstanceProfileName"] for p in listed], [name])
        pages = client.get_paginator("list_instance_profiles").paginate(
            PathPrefix="/ec2/", PaginationConfig={"PageSize": 1})
        self.assertIn(name, [p["InstanceProfileName"] for page in pages
                             for p in page["InstanceProfiles"]])
        tags = client.list_instance_profile_tags(InstanceProfileName=name)["Tags"]
        self.assertEqual(tags, [{"Key": "env", "Value": "prod"}])

        client.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role)
        client.delete_instance_profile(InstanceProfileName=name)
        with self.assertRaises(ClientError) as gone:
            client.get_instance_profile(InstanceProfileName=name)
        self.assertEqual(gone.exception.response["Error"]["Code"], "NoSuchEntity")
        self.assertEqual(gone.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        for r in (role, other):
            client.delete_role(RoleName=r)

    def test_iamlet_admin_speaks_the_same_verbs(self):
        name = unique("cli-profile")
        out = admin("create-instance-profile", "--instance-profile-name", name)
        self.assertEqual(out["InstanceProfile"]["InstanceProfileName"], name)
        self.assertIsNone(admin("delete-instance-profile", "--instance-profile-name", name))


class ServiceLinkedRoles(unittest.TestCase):
    def test_a_service_linked_role_is_only_modifiable_by_aws(self):
        client = iam()
        suffix = unique("s").replace("-", "")
        role = client.create_service_linked_role(
            AWSServiceName="autoscaling.amazonaws.com", CustomSuffix=suffix
        )["Role"]
        name = f"AWSServiceRoleForAutoScaling_{suffix}"
        self.assertEqual(role["RoleName"], name)
        self.assertEqual(role["Path"], "/aws-service-role/autoscaling.amazonaws.com/")
        with self.assertRaises(ClientError) as refused:
            client.delete_role(RoleName=name)
        self.assertEqual(refused.exception.response["Error"]["Code"], "UnmodifiableEntity")

        task = client.delete_service_linked_role(RoleName=name)["DeletionTaskId"]
        self.assertTrue(task.startswith(
            f"task/aws-service-role/autoscaling.amazonaws.com/{name}/"), task)
        status = client.get_service_linked_role_deletion_status(DeletionTaskId=task)
        self.assertEqual(status["Status"], "SUCCEEDED")
        with self.assertRaises(ClientError) as unknown:
            client.create_service_linked_role(AWSServiceName="nothing.example.com")
        self.assertEqual(unknown.exception.response["Error"]["Code"], "InvalidInput")

    def test_sts_preferences_are_accepted(self):
        client = iam()
        client.set_security_token_service_preferences(GlobalEndpointTokenVersion="v2Token")
        client.set_security_token_service_preferences(GlobalEndpointTokenVersion="v1Token")


if __name__ == "__main__":
    unittest.main()
