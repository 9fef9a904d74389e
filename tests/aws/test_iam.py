"""The IAM Query API on the control plane's HTTP edge, through the unmodified AWS CLI and boto3.

Run by tests/aws/run.sh (see its contract): the variables IAMLET_BIN, IAMLET_CP_HTTP,
IAMLET_CP_GRPC, IAMLET_SIDECAR_GRPC, IAMLET_ACCOUNT and AWS_SHARED_CREDENTIALS_FILE (profile
demo-admin, the demo tenant's administrator) name a running `iamlet up`. Every test makes
what it needs under unique names, so the files run in any order.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from unittest import mock
from xml.etree import ElementTree

import boto3
import botocore.auth
import botocore.session
from botocore.exceptions import ClientError

BIN = os.environ["IAMLET_BIN"]
CP_HTTP = os.environ["IAMLET_CP_HTTP"]
CP_GRPC = os.environ["IAMLET_CP_GRPC"]
SIDECAR_GRPC = os.environ["IAMLET_SIDECAR_GRPC"]
ACCOUNT = os.environ.get("IAMLET_ACCOUNT", "111122223333")
PROFILE = "demo-admin"
# Bounds on every wait and subprocess: a hang fails the test instead.
PATIENCE = 60.0

IDENTITY_DOC = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
}
TRUST_DOC = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
# iamlet verifies web identity tokens offline, so an OIDC provider carries its keys (iamlet's
# Jwks parameter, which AWS's model does not have: added to the form before signing).
JWKS = json.dumps(
    {"keys": [{"kty": "RSA", "kid": "k1", "n": "sXchDaQebSXKcvL2", "e": "AQAB"}]}
)
PASSWORD = "Correct-Horse-9-battery"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def iam(profile=PROFILE, **kwargs):
    session = boto3.session.Session(profile_name=profile, region_name="us-east-1")
    client = session.client("iam", endpoint_url=CP_HTTP, **kwargs)
    client.meta.events.register(
        "before-sign.iam.CreateOpenIDConnectProvider", add_jwks
    )
    return client


def keyed_iam(access_key_id, secret):
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    return session.client("iam", endpoint_url=CP_HTTP)


def form_of(request):
    body = request.body
    return body.decode() if isinstance(body, bytes) else body


def add_jwks(request, **_):
    body = form_of(request)
    if "Jwks=" not in body:
        body += "&" + urllib.parse.urlencode({"Jwks": JWKS})
    request.data = body.encode()


def run(args, check=True):
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=PATIENCE, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"{args[:4]}… exited {done.returncode}: {done.stderr.strip()}"
        )
    return done


def aws_cli(*args):
    """`aws iam … --endpoint-url $IAMLET_CP_HTTP --profile demo-admin`, its JSON output."""
    done = run(
        [
            sys.executable,
            "-m",
            "awscli",
            "iam",
            *args,
            "--endpoint-url",
            CP_HTTP,
            "--profile",
            PROFILE,
            "--output",
            "json",
        ]
    )
    return json.loads(done.stdout) if done.stdout.strip() else {}


def iamlet_admin(*args):
    return run([BIN, "admin", "--endpoint", CP_GRPC, "--profile", PROFILE, *args])


def authorize(access_key_id, secret, action, resource):
    """True when the sidecar allows, False when it denies, None when it does not decide."""
    done = run(
        [
            BIN,
            "authorize",
            "--sidecar",
            SIDECAR_GRPC,
            "--access-key-id",
            access_key_id,
            "--secret-access-key",
            secret,
            "--action",
            action,
            "--resource",
            resource,
        ],
        check=False,
    )
    try:
        decision = json.loads(done.stdout)["Decision"]
    except (ValueError, KeyError, TypeError):
        # Not a decision: the sidecar does not know the key yet (InvalidClientTokenId).
        return None
    return decision == "ALLOW"


def eventually(what, condition):
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def totp(seed_base32, step):
    """RFC 6238 (HMAC-SHA1, six digits, 30-second steps), as authenticator apps compute it."""
    key = base64.b32decode(seed_base32 + "=" * (-len(seed_base32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


class CliManagesATenant(unittest.TestCase):
    """`aws iam --endpoint-url` as an operator uses it, seen by export and by the sidecar."""

    def test_the_aws_cli_manages_a_tenant_end_to_end(self):
        user = unique("cli-user")
        role = unique("cli-role")
        policy_name = unique("cli-read")
        bucket = unique("cli-bucket")
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
        with tempfile.TemporaryDirectory() as tmp:
            doc_path = os.path.join(tmp, "policy.json")
            with open(doc_path, "w", encoding="utf-8") as f:
                json.dump(document, f)
            trust_path = os.path.join(tmp, "trust.json")
            with open(trust_path, "w", encoding="utf-8") as f:
                json.dump(TRUST_DOC, f)

            created = aws_cli("create-user", "--user-name", user)
            self.assertEqual(created["User"]["UserName"], user)
            self.assertEqual(
                created["User"]["Arn"], f"arn:aws:iam::{ACCOUNT}:user/{user}"
            )
            policy = aws_cli(
                "create-policy",
                "--policy-name",
                policy_name,
                "--policy-document",
                f"file://{doc_path}",
            )["Policy"]
            self.assertEqual(policy["DefaultVersionId"], "v1")
            aws_cli(
                "attach-user-policy",
                "--user-name",
                user,
                "--policy-arn",
                policy["Arn"],
            )
            key = aws_cli("create-access-key", "--user-name", user)["AccessKey"]
            self.assertEqual(key["Status"], "Active")
            self.assertTrue(key["AccessKeyId"].startswith("AKIA"))

            version = aws_cli(
                "get-policy-version",
                "--policy-arn",
                policy["Arn"],
                "--version-id",
                "v1",
            )["PolicyVersion"]
            # The CLI decodes the URL-encoded document into JSON, as from AWS.
            self.assertEqual(version["Document"], document)
            self.assertTrue(version["IsDefaultVersion"])

            aws_cli(
                "create-role",
                "--role-name",
                role,
                "--assume-role-policy-document",
                f"file://{trust_path}",
            )
            aws_cli(
                "put-role-policy",
                "--role-name",
                role,
                "--policy-name",
                "inline-read",
                "--policy-document",
                f"file://{doc_path}",
            )
            inline = aws_cli(
                "get-role-policy", "--role-name", role, "--policy-name", "inline-read"
            )
            self.assertEqual(inline["PolicyDocument"], document)
            aws_cli("tag-role", "--role-name", role, "--tags", "Key=team,Value=data")
            tags = aws_cli("list-role-tags", "--role-name", role)["Tags"]
            self.assertEqual(tags, [{"Key": "team", "Value": "data"}])

        # Paging: one user a page, the server's marker carried in the CLI's token.
        first = aws_cli("list-users", "--max-items", "1", "--page-size", "1")
        self.assertEqual(len(first["Users"]), 1)
        self.assertIn("NextToken", first)
        second = aws_cli(
            "list-users",
            "--max-items",
            "1",
            "--page-size",
            "1",
            "--starting-token",
            first["NextToken"],
        )
        self.assertEqual(len(second["Users"]), 1)
        self.assertLess(first["Users"][0]["UserName"], second["Users"][0]["UserName"])
        # Without --max-items the CLI follows every marker: the whole list, each user once.
        every = [u["UserName"] for u in aws_cli("list-users", "--page-size", "1")["Users"]]
        self.assertIn(user, every)
        self.assertEqual(len(every), len(set(every)))
        self.assertEqual(every, sorted(every))

        # The tenant as `iamlet admin export` writes it.
        exported = json.loads(iamlet_admin("export", "--format", "json").stdout)
        text = json.dumps(exported)
        self.assertIn(user, text)
        self.assertIn(policy_name, text)
        self.assertIn(role, text)
        self.assertIn('"team"', text)

        # The sidecar decides with the new user's key as the policy says, once it has synced.
        resource = f"arn:aws:s3:::{bucket}/report.csv"
        eventually(
            "the sidecar to allow the new user",
            lambda: authorize(
                key["AccessKeyId"], key["SecretAccessKey"], "s3:GetObject", resource
            ),
        )
        self.assertIs(
            authorize(
                key["AccessKeyId"], key["SecretAccessKey"], "s3:PutObject", resource
            ),
            False,
        )


# --- every operation of botocore's model ---------------------------------------------------

TRUST_JSON = json.dumps(TRUST_DOC)
IDENTITY_JSON = json.dumps(IDENTITY_DOC)

# A SAML 2.0 IdP's metadata (over IAM's 1,000-character minimum) around a self-signed P-256
# certificate valid until 2126, made for this suite with `openssl req -x509`.
SAML_CERTIFICATE = (
    "MIIBizCCATGgAwIBAgIULMoa7u/Wxanm2z91pqyjjWoJ0wEwCgYIKoZIzj0EAwIwGjEYMBYGA1UEAwwPaWRwLmV4YW1wbGUuY29tMCAXDTI2MTIwMzExNTUxMloYDzIxMjYxMTA5MTE1NTEyWjAaMRgwFgYDVQQDDA9pZHAuZXhhbXBsZS5jb20wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARF4IoTM/vaRl4yD8EgJjw64Ynb7wN2jjOgqcagCWYCPrkGkgX3d593yOHjTvBBZ8yOl3N53qGARBqT8gVfBxY/o1MwUTAdBgNVHQ4EFgQUlxrVnBp9O92BqTooUX8wrEvJ1MAwHwYDVR0jBBgwFoAUlxrVnBp9O92BqTooUX8wrEvJ1MAwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAuv8k6Xi/nOOJ7Sw1c9//lVhsUAxi7Pr8YNG4YlQkeu0CIF7+whdu9eYVaIsFwrfyhJZ6g4N6d7hSiC/APKF7wPth"
)
SAML_METADATA = f"""<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/saml">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>{SAML_CERTIFICATE}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        Location="https://idp.example.com/saml/sso/post"/>
  </md:IDPSSODescriptor>
  <md:Organization>
    <md:OrganizationName xml:lang="en">Example IdP of iamlet's AWS suite</md:OrganizationName>
    <md:OrganizationDisplayName xml:lang="en">Example IdP</md:OrganizationDisplayName>
    <md:OrganizationURL xml:lang="en">https://idp.example.com/</md:OrganizationURL>
  </md:Organization>
</md:EntityDescriptor>
"""

# Operations of the model that iamlet does not implement answer InvalidAction: they are listed
# by the test from the model, not here. These implemented ones need a caller of their own:
# The account password policy is account-wide: tests/aws/test_account.py sets it and
# deletes it again, so no other test meets it.
SPECIAL = {
    "ChangePassword",
    "UpdateAccountPasswordPolicy",
    "GetAccountPasswordPolicy",
    "DeleteAccountPasswordPolicy",
}


class World:
    """The entities one operation needs, made on first use under unique names."""

    def __init__(self, client):
        self.c = client
        self.suffix = uuid.uuid4().hex[:10]
        self.cache = {}

    def once(self, name, make):
        if name not in self.cache:
            self.cache[name] = make()
        return self.cache[name]

    def user(self):
        def make():
            name = f"w-user-{self.suffix}"
            self.c.create_user(UserName=name, Tags=[{"Key": "k", "Value": "v"}])
            return name

        return self.once("user", make)

    def group(self):
        def make():
            name = f"w-group-{self.suffix}"
            self.c.create_group(GroupName=name)
            return name

        return self.once("group", make)

    def role(self):
        def make():
            name = f"w-role-{self.suffix}"
            self.c.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=TRUST_JSON,
                Tags=[{"Key": "k", "Value": "v"}],
            )
            return name

        return self.once("role", make)

    def instance_profile(self):
        def make():
            name = f"w-ip-{self.suffix}"
            self.c.create_instance_profile(InstanceProfileName=name)
            return name

        return self.once("instance_profile", make)

    def linked_role(self):
        def make():
            return self.c.create_service_linked_role(
                AWSServiceName="autoscaling.amazonaws.com", CustomSuffix=f"w{self.suffix}"
            )["Role"]["RoleName"]

        return self.once("linked_role", make)

    def deletion_task(self):
        def make():
            return self.c.delete_service_linked_role(RoleName=self.linked_role())["DeletionTaskId"]

        return self.once("deletion_task", make)

    def policy(self):
        def make():
            return self.c.create_policy(
                PolicyName=f"w-policy-{self.suffix}",
                PolicyDocument=IDENTITY_JSON,
                Tags=[{"Key": "k", "Value": "v"}],
            )["Policy"]["Arn"]

        return self.once("policy", make)

    def second_version(self):
        def make():
            return self.c.create_policy_version(
                PolicyArn=self.policy(), PolicyDocument=IDENTITY_JSON
            )["PolicyVersion"]["VersionId"]

        return self.once("version", make)

    def key(self):
        return self.once(
            "key",
            lambda: self.c.create_access_key(UserName=self.user())["AccessKey"][
                "AccessKeyId"
            ],
        )

    def mfa(self):
        def make():
            device = self.c.create_virtual_mfa_device(
                VirtualMFADeviceName=f"w-mfa-{self.suffix}"
            )["VirtualMFADevice"]
            return device["SerialNumber"], device["Base32StringSeed"].decode()

        return self.once("mfa", make)

    def codes(self):
        _, seed = self.mfa()
        step = int(time.time()) // 30 - 1
        return totp(seed, step), totp(seed, step + 1)

    def later_codes(self):
        """Two consecutive codes after those of `codes` (a resync after enabling)."""
        _, seed = self.mfa()
        step = int(time.time()) // 30 + 1
        return totp(seed, step), totp(seed, step + 1)

    def saml(self):
        return self.once(
            "saml",
            lambda: self.c.create_saml_provider(
                Name=f"w-saml-{self.suffix}", SAMLMetadataDocument=SAML_METADATA
            )["SAMLProviderArn"],
        )

    def oidc(self):
        return self.once(
            "oidc",
            lambda: self.c.create_open_id_connect_provider(
                Url=f"https://oidc-{self.suffix}.example.com",
                ClientIDList=["client"],
                ThumbprintList=["0" * 40],
            )["OpenIDConnectProviderArn"],
        )

    def alias(self):
        def make():
            name = f"w-alias-{self.suffix}"
            self.c.create_account_alias(AccountAlias=name)
            return name

        return self.once("alias", make)


def prepare(op, w):
    """The state `op` acts on, beyond the entities its parameters name."""
    kind = (
        "user" if "User" in op else "group" if "Group" in op else "role" if "Role" in op else None
    )
    if op.startswith("Detach") or op.startswith("ListAttached") or op == "ListEntitiesForPolicy":
        kind = kind or "user"
        getattr(w.c, f"attach_{kind}_policy")(
            **{f"{kind.capitalize()}Name": getattr(w, kind)(), "PolicyArn": w.policy()}
        )
    if (op.startswith("Get") or op.startswith("Delete")) and op.endswith("Policy") and kind:
        if op not in ("DeletePolicy", "GetPolicy"):
            getattr(w.c, f"put_{kind}_policy")(
                **{
                    f"{kind.capitalize()}Name": getattr(w, kind)(),
                    "PolicyName": "inline",
                    "PolicyDocument": IDENTITY_JSON,
                }
            )
    if op == "RemoveRoleFromInstanceProfile":
        w.c.add_role_to_instance_profile(
            InstanceProfileName=w.instance_profile(), RoleName=w.role()
        )
    if op in ("RemoveUserFromGroup", "ListGroupsForUser", "GetGroup"):
        w.c.add_user_to_group(GroupName=w.group(), UserName=w.user())
    if op in ("DeleteUserPermissionsBoundary",):
        w.c.put_user_permissions_boundary(UserName=w.user(), PermissionsBoundary=w.policy())
    if op in ("DeleteRolePermissionsBoundary",):
        w.c.put_role_permissions_boundary(RoleName=w.role(), PermissionsBoundary=w.policy())
    if op in ("GetLoginProfile", "UpdateLoginProfile", "DeleteLoginProfile"):
        w.c.create_login_profile(UserName=w.user(), Password=PASSWORD)
    if op in ("DeactivateMFADevice", "ListMFADevices", "GetMFADevice", "ResyncMFADevice"):
        code1, code2 = w.codes()
        w.c.enable_mfa_device(
            UserName=w.user(),
            SerialNumber=w.mfa()[0],
            AuthenticationCode1=code1,
            AuthenticationCode2=code2,
        )
    if op == "DeleteAccountAlias":
        w.alias()


def value_for(op, name, w):
    """A valid value for parameter `name` of `op`, or None to leave it out."""
    fresh = {
        "CreateUser": "UserName",
        "CreateGroup": "GroupName",
        "CreateRole": "RoleName",
        "CreatePolicy": "PolicyName",
        "CreateSAMLProvider": "Name",
        "CreateInstanceProfile": "InstanceProfileName",
    }
    if fresh.get(op) == name:
        return unique(f"new-{name[:-4].lower()}")
    if op == "DeleteServiceLinkedRole" and name == "RoleName":
        return w.linked_role()
    table = {
        "UserName": w.user,
        "InstanceProfileName": w.instance_profile,
        "AWSServiceName": lambda: "autoscaling.amazonaws.com",
        "CustomSuffix": lambda: unique("c"),
        "DeletionTaskId": w.deletion_task,
        "GroupName": w.group,
        "RoleName": w.role,
        "PolicyArn": w.policy,
        "PermissionsBoundary": w.policy,
        "PolicyName": lambda: "inline",
        "PolicyDocument": lambda: TRUST_JSON if op == "UpdateAssumeRolePolicy" else IDENTITY_JSON,
        "AssumeRolePolicyDocument": lambda: TRUST_JSON,
        "VersionId": w.second_version,
        "AccessKeyId": w.key,
        "Status": lambda: "Inactive",
        "Tags": lambda: [{"Key": "k2", "Value": "v2"}],
        "TagKeys": lambda: ["k"],
        "Password": lambda: PASSWORD,
        "SerialNumber": lambda: w.mfa()[0],
        "AuthenticationCode1": lambda: (w.later_codes if op == "ResyncMFADevice" else w.codes)()[0],
        "AuthenticationCode2": lambda: (w.later_codes if op == "ResyncMFADevice" else w.codes)()[1],
        "SAMLMetadataDocument": lambda: SAML_METADATA,
        "SAMLProviderArn": w.saml,
        "VirtualMFADeviceName": lambda: unique("new-mfa"),
        "OpenIDConnectProviderArn": w.oidc,
        "Url": lambda: f"https://{unique('new-oidc')}.example.com",
        "ClientID": lambda: "client" if op.startswith("Remove") else "client2",
        "ThumbprintList": lambda: ["1" * 40],
        "AccountAlias": lambda: w.alias() if op == "DeleteAccountAlias" else unique("new-alias"),
        "Description": lambda: "described",
        "Arn": lambda: w.c.get_user(UserName=w.user())["User"]["Arn"],
        "ServiceNamespaces": lambda: ["s3", "iam"],
        "JobId": lambda: w.c.generate_service_last_accessed_details(
            Arn=f"arn:aws:iam::{ACCOUNT}:user/{w.user()}"
        )["JobId"],
        "ServiceNamespace": lambda: "iam",
        "PolicySourceArn": lambda: w.c.get_user(UserName=w.user())["User"]["Arn"],
        "PolicyInputList": lambda: [IDENTITY_JSON],
        "ActionNames": lambda: ["s3:GetObject"],
    }
    make = table.get(name)
    return make() if make else None


def generic_value(shape, depth=0):
    """A value of `shape` that botocore's validator accepts (for unimplemented operations)."""
    kind = shape.type_name
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return "x" * max(1, shape.metadata.get("min", 1))
    if kind in ("integer", "long"):
        return max(1, shape.metadata.get("min", 1))
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    if kind == "blob":
        return b"x"
    if kind == "list":
        return [generic_value(shape.member, depth + 1)] * max(1, shape.metadata.get("min", 1))
    if kind == "map":
        return {"k": generic_value(shape.value, depth + 1)}
    if kind == "structure":
        return {
            m: generic_value(shape.members[m], depth + 1)
            for m in shape.required_members
        }
    return "x"


def out_of_order(shape, element, path="result"):
    """Where the children of an XML `element` are not in the order of `shape`'s members
    (members the model does not know, iamlet's additions, are skipped)."""
    problems = []
    if shape is None or element is None:
        return problems
    local = lambda tag: tag.rsplit("}", 1)[-1]
    if shape.type_name == "structure":
        order = list(shape.members)
        seen = [local(c.tag) for c in element if local(c.tag) in shape.members]
        if seen != sorted(seen, key=order.index):
            problems.append(f"{path}: {seen} is not in the model's order {order}")
        for child in element:
            name = local(child.tag)
            if name in shape.members:
                problems += out_of_order(shape.members[name], child, f"{path}.{name}")
    elif shape.type_name == "list":
        for i, child in enumerate(element):
            problems += out_of_order(shape.member, child, f"{path}[{i}]")
    return problems


def missing_required(shape, value, path="result"):
    """The required members the model's output shape names that `value` lacks, recursively."""
    missing = []
    if shape is None:
        return missing
    if shape.type_name == "structure" and isinstance(value, dict):
        for member in shape.required_members:
            if member not in value:
                missing.append(f"{path}.{member}")
        for member, member_shape in shape.members.items():
            if member in value:
                missing += missing_required(member_shape, value[member], f"{path}.{member}")
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            missing += missing_required(shape.member, item, f"{path}[{i}]")
    return missing


class EveryOperationOfTheModel(unittest.TestCase):
    """Each IAM operation of botocore's model, called through boto3 and parsed by botocore."""

    @classmethod
    def setUpClass(cls):
        cls.model = botocore.session.get_session().get_service_model("iam")
        cls.client = iam()
        # A user without policies tells implemented operations (AccessDenied: authorized, so
        # known) from the others (InvalidAction) without changing anything.
        name = unique("probe")
        cls.client.create_user(UserName=name)
        key = cls.client.create_access_key(UserName=name)["AccessKey"]
        cls.prober = keyed_iam(key["AccessKeyId"], key["SecretAccessKey"])
        cls.raw = {}

        def keep(http_response, model, **_):
            cls.raw[model.name] = http_response.content

        cls.client.meta.events.register("after-call.iam", keep)

    def call(self, op, params, client=None):
        method = getattr(client or self.client, botocore.xform_name(op))
        return method(**params)

    def raw_result(self, op):
        """The `<{op}Result>` element of the last answer to `op`, as sent."""
        body = self.raw.get(op)
        if body is None:
            return None
        root = ElementTree.fromstring(body)
        for element in root:
            if element.tag.endswith(f"{op}Result"):
                return element
        return None

    def test_every_operation_answers_its_model_or_invalid_action(self):
        implemented, unimplemented, refused, failures = [], [], [], []
        for op in self.model.operation_names:
            op_model = self.model.operation_model(op)
            shape = op_model.input_shape
            w = World(self.client)
            try:
                probe = {
                    name: generic_value(shape.members[name])
                    for name in (shape.required_members if shape else [])
                }
                self.call(op, probe, self.prober)
                answered = None
            except ClientError as e:
                answered = e.response["Error"]["Code"]
            if answered == "InvalidAction":
                unimplemented.append(op)
                continue
            if answered == "UnsupportedOperation":
                # Refused on purpose, with the reason (README's list).
                refused.append(op)
                continue
            implemented.append(op)
            if op in SPECIAL:
                continue
            try:
                prepare(op, w)
                params = {}
                for name in shape.members if shape else []:
                    required = name in shape.required_members
                    # Optional members that the world names: a user's own, a password, and a
                    # suffix so that each run's service-linked role is new.
                    if required or name in ("UserName", "Password", "CustomSuffix"):
                        value = value_for(op, name, w)
                        if value is None and required:
                            value = generic_value(shape.members[name])
                        if value is not None:
                            params[name] = value
                result = self.call(op, params)
            except ClientError as e:
                failures.append(f"{op}: {e.response['Error']['Code']}: {e}")
                continue
            result.pop("ResponseMetadata", None)
            missing = missing_required(op_model.output_shape, result)
            if missing:
                failures.append(f"{op}: missing required members {missing}")
            order = out_of_order(op_model.output_shape, self.raw_result(op))
            if order:
                failures.append(f"{op}: {order}")
        self.assertEqual(failures, [], "\n".join(failures))
        # iamlet implements the IAM API's identity core; the count guards against an edge that
        # answers InvalidAction to everything.
        self.assertGreaterEqual(len(implemented), 85, implemented)
        # Every operation of the model is served or refused on purpose.
        self.assertEqual(unimplemented, [], "operations answering InvalidAction")
        self.assertIn("ListServerCertificates", refused)
        self.assertIn("ListInstanceProfiles", implemented)
        print(
            f"\n{len(implemented)} IAM operations implemented and parsed, "
            f"{len(refused)} refused on purpose: {', '.join(sorted(refused))}",
            file=sys.stderr,
        )

    def test_change_password_is_the_callers_own(self):
        admin = self.client
        name = unique("pw-user")
        admin.create_user(UserName=name)
        admin.attach_user_policy(
            UserName=name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"
        )
        admin.create_login_profile(UserName=name, Password=PASSWORD)
        key = admin.create_access_key(UserName=name)["AccessKey"]
        own = keyed_iam(key["AccessKeyId"], key["SecretAccessKey"])
        own.change_password(OldPassword=PASSWORD, NewPassword=PASSWORD + "-new")
        with self.assertRaises(ClientError) as caught:
            own.change_password(OldPassword=PASSWORD, NewPassword=PASSWORD + "-2")
        self.assertNotEqual(caught.exception.response["Error"]["Code"], "InvalidAction")

    def test_paginators_walk_every_page(self):
        names = [unique("pg-user") for _ in range(3)]
        for name in names:
            self.client.create_user(UserName=name, Path="/paging/")
        pages = list(
            self.client.get_paginator("list_users").paginate(
                PathPrefix="/paging/", PaginationConfig={"PageSize": 1}
            )
        )
        seen = [u["UserName"] for page in pages for u in page["Users"]]
        for name in names:
            self.assertIn(name, seen)
        self.assertEqual(len(seen), len(set(seen)))
        self.assertGreaterEqual(len(pages), 3)
        self.assertTrue(all(p["IsTruncated"] for p in pages[:-1]))
        self.assertFalse(pages[-1]["IsTruncated"])


# --- errors ---------------------------------------------------------------------------------


def edit_form(client, op, edit):
    """Rewrites `op`'s form body before it is signed (what an SDK would never send)."""

    def handler(request, **_):
        request.data = edit(form_of(request)).encode()

    client.meta.events.register(f"before-sign.iam.{op}", handler)


class ErrorsAreAwsErrors(unittest.TestCase):
    """Each refusal as a botocore ClientError with AWS's code and status."""

    def assert_code(self, code, status, call):
        with self.assertRaises(ClientError) as caught:
            call()
        error = caught.exception.response
        self.assertEqual(error["Error"]["Code"], code, error)
        self.assertEqual(error["ResponseMetadata"]["HTTPStatusCode"], status, error)
        self.assertTrue(error["ResponseMetadata"].get("RequestId"), error)

    def test_entity_errors(self):
        client = iam()
        self.assert_code(
            "NoSuchEntity", 404, lambda: client.get_user(UserName=unique("nobody"))
        )
        name = unique("dup")
        client.create_user(UserName=name)
        self.assert_code("EntityAlreadyExists", 409, lambda: client.create_user(UserName=name))

    def test_request_errors(self):
        client = iam()
        # An action IAM's model does not have (instance profiles, once the example here,
        # are served now).
        unknown = iam()
        edit_form(unknown, "ListUsers", lambda b: b.replace("Action=ListUsers", "Action=ListEverything"))
        self.assert_code("InvalidAction", 400, unknown.list_users)
        edit_form(client, "CreateUser", lambda b: "&".join(
            p for p in b.split("&") if not p.startswith("UserName=")
        ))
        self.assert_code("MissingParameter", 400, lambda: client.create_user(UserName="x"))
        self.assert_code("ValidationError", 400, lambda: client.list_users(MaxItems=1001))
        self.assert_code("ValidationError", 400, lambda: client.list_users(Marker="bogus"))
        bad_version = iam()
        edit_form(bad_version, "ListUsers", lambda b: b.replace("2010-05-08", "2011-06-15"))
        self.assert_code("InvalidAction", 400, bad_version.list_users)
        wrong_type = iam()
        edit_form(wrong_type, "ListUsers", lambda b: b + "&MaxItems=ten")
        self.assert_code("ValidationError", 400, wrong_type.list_users)

    def test_credential_errors(self):
        session = boto3.session.Session(profile_name=PROFILE)
        creds = session.get_credentials()
        wrong = keyed_iam(creds.access_key, "x" * 40)
        self.assert_code("SignatureDoesNotMatch", 403, wrong.list_users)
        unknown = keyed_iam("AKIA" + uuid.uuid4().hex[:16].upper(), "x" * 40)
        self.assert_code("InvalidClientTokenId", 403, unknown.list_users)
        # A signature twenty minutes old is outside AWS's five-minute window.
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
        stale = iam()
        target = (
            "botocore.auth.get_current_datetime"
            if hasattr(botocore.auth, "get_current_datetime")
            else "botocore.auth.datetime"
        )
        if target.endswith("get_current_datetime"):
            with mock.patch(target, return_value=old.replace(tzinfo=None)):
                self.assert_code("SignatureDoesNotMatch", 403, stale.list_users)
        else:
            fake = mock.MagicMock(wraps=datetime)
            fake.datetime.utcnow.return_value = old.replace(tzinfo=None)
            with mock.patch(target, fake):
                self.assert_code("SignatureDoesNotMatch", 403, stale.list_users)
        # A user without a policy is denied.
        admin = iam()
        name = unique("noperm")
        admin.create_user(UserName=name)
        key = admin.create_access_key(UserName=name)["AccessKey"]
        nobody = keyed_iam(key["AccessKeyId"], key["SecretAccessKey"])
        self.assert_code("AccessDenied", 403, nobody.list_users)

    def test_an_oversized_body_is_413(self):
        # Declared, not sent: the edge answers a length over its 1 MiB limit before reading the
        # body (sending 2 MiB races the answer: the client may see a broken pipe first).
        host = urllib.parse.urlsplit(CP_HTTP).netloc
        connection = http.client.HTTPConnection(host, timeout=PATIENCE)
        try:
            connection.putrequest("POST", "/")
            connection.putheader("Content-Type", "application/x-www-form-urlencoded")
            connection.putheader("Content-Length", str(2 << 20))
            connection.endheaders()
            self.assertEqual(connection.getresponse().status, 413)
        finally:
            connection.close()

if __name__ == "__main__":
    unittest.main()
