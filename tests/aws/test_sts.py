"""iamlet's STS through unmodified boto3, botocore and the AWS CLI (issue 14, items 1 and 3).

- boto3's default credential chain gets role credentials (b) from AWS_ENDPOINT_URL_STS +
  AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN and (c) from a credential_process profile; the
  session's GetCallerIdentity through iamlet answers the assumed-role ARN, and `iamlet
  authorize` with those credentials decides as the role's policies say.
- sts.assume_role signed with a user's key: session policy, tags, duration.
- Every bad input as a botocore ClientError with AWS's code (raw HTTP for what boto3 cannot
  send), and every refusal counted in the sidecar's /metrics.
- Every operation of botocore's STS model: those iamlet implements parse with botocore's own
  parser with every required member present; the others answer InvalidAction.
"""

import datetime
import http.client
import json
import os
import tempfile
import unittest
import urllib.parse
from unittest import mock

import botocore.auth
import botocore.config
import botocore.exceptions
import botocore.session

import common
from common import ACCOUNT, SIDECAR_GRPC, SIDECAR_HTTP

# What iamlet's STS implements, by botocore's operation names.
IMPLEMENTED = {
    "AssumeRole",
    "AssumeRoleWithWebIdentity",
    "GetSessionToken",
    "GetCallerIdentity",
    "GetAccessKeyInfo",
}


def demo_admin_keys():
    """The demo-admin profile's keys, from the suite's shared credentials file."""
    creds = botocore.session.Session(profile="demo-admin").get_credentials()
    return creds.access_key, creds.secret_key


def authorize(creds, action, resource):
    """`iamlet authorize` with boto3 credentials; (exit status, decision)."""
    frozen = creds.get_frozen_credentials()
    args = [
        "authorize",
        "--sidecar", SIDECAR_GRPC,
        "--access-key-id", frozen.access_key,
        "--secret-access-key", frozen.secret_key,
        "--action", action,
        "--resource", resource,
    ]
    if frozen.token:
        args += ["--session-token", frozen.token]
    done = common.iamlet(*args, env=common.clean_env(), check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)["Decision"]


def missing_required(shape, value, path="$"):
    """Paths of members `shape` marks required that `value` (botocore's parse) lacks."""
    missing = []
    if shape is None:
        return missing
    if shape.type_name == "structure":
        for name in shape.required_members:
            if name not in value:
                missing.append(f"{path}.{name}")
        for name, member in shape.members.items():
            if name in value:
                missing += missing_required(member, value[name], f"{path}.{name}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            missing += missing_required(shape.member, item, f"{path}[{i}]")
    return missing


def sample(shape):
    """A value of `shape` that passes botocore's client-side validation (required members
    only, minimum lengths), for calling operations iamlet does not implement."""
    kind = shape.type_name
    if kind == "structure":
        return {n: sample(shape.members[n]) for n in shape.required_members}
    if kind == "list":
        return [sample(shape.member)]
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        return "a" * max(shape.metadata.get("min", 1), 20)
    if kind in ("integer", "long"):
        return max(shape.metadata.get("min", 0), 900)
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return datetime.datetime.now(datetime.timezone.utc)
    if kind == "blob":
        return b"a"
    raise AssertionError(f"no sample for {kind}")


class StsTestCase(unittest.TestCase):
    """A user who may assume roles and tag sessions, and a role trusting that user."""

    @classmethod
    def setUpClass(cls):
        cls.bucket = common.unique("sts-bucket")
        cls.user, cls.key_id, cls.secret = common.new_user(
            common.policy(
                common.allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"])
            )
        )
        trust = common.policy({
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{cls.user}"},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"],
        })
        cls.role_arn = common.new_role(
            trust,
            common.policy(
                common.allow("s3:*", f"arn:aws:s3:::{cls.bucket}/*"),
                {
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{cls.bucket}",
                    "Condition": {"StringEquals": {"aws:PrincipalTag/team": "data"}},
                },
            ),
        )
        cls.user_sts = common.sts(common.keys_session(cls.key_id, cls.secret))
        # The sidecar serves the user once the control plane's change reaches it.
        common.eventually(
            lambda: cls.user_sts.get_caller_identity(),
            "the new user to reach the sidecar",
        )


class DefaultCredentialChain(StsTestCase):
    def test_b_web_identity_from_environment_variables(self):
        env = {
            "AWS_ENDPOINT_URL_STS": SIDECAR_HTTP,
            "AWS_WEB_IDENTITY_TOKEN_FILE": common.WEB_IDENTITY_TOKEN_FILE,
            "AWS_ROLE_ARN": common.DEMO_WEB_IDENTITY_ROLE,
            "AWS_ROLE_SESSION_NAME": "chain-b",
        }
        with mock.patch.dict(os.environ, env):
            session = common.session()
            creds = session.get_credentials()
            self.assertEqual(creds.method, "assume-role-with-web-identity")
            # The client finds iamlet's STS through AWS_ENDPOINT_URL_STS alone.
            identity = session.client("sts").get_caller_identity()
        self.assertEqual(
            identity["Arn"], f"arn:aws:sts::{ACCOUNT}:assumed-role/reports-reader/chain-b"
        )
        self.assertEqual(identity["Account"], ACCOUNT)
        self.assertTrue(creds.get_frozen_credentials().access_key.startswith("ASIA"))
        # reports-reader reads reports and writes nothing.
        report = "arn:aws:s3:::demo-data/reports/q4.csv"
        self.assertEqual(authorize(creds, "s3:GetObject", report), (0, "ALLOW"))
        status, decision = authorize(creds, "s3:PutObject", report)
        self.assertEqual(status, 1)
        self.assertEqual(decision, "IMPLICIT_DENY")

    def test_c_credential_process_profile(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "config")
            with open(config, "w") as f:
                f.write(
                    "[profile iamlet-process]\n"
                    f"credential_process = {common.BIN} assume-role --sidecar {SIDECAR_GRPC}"
                    f" --role-arn {self.role_arn} --role-session-name chain-c"
                    f" --access-key-id {self.key_id} --secret-access-key {self.secret}"
                    " --output credential-process\n"
                )
            env = {"AWS_CONFIG_FILE": config, "AWS_PROFILE": "iamlet-process"}
            with mock.patch.dict(os.environ, env):
                session = common.session()
                creds = session.get_credentials()
                self.assertEqual(creds.method, "custom-process")
                identity = common.sts(session).get_caller_identity()
        role_name = self.role_arn.rsplit("/", 1)[1]
        self.assertEqual(
            identity["Arn"], f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/chain-c"
        )
        obj = f"arn:aws:s3:::{self.bucket}/data.csv"
        self.assertEqual(authorize(creds, "s3:GetObject", obj), (0, "ALLOW"))
        self.assertEqual(authorize(creds, "s3:GetObject", "arn:aws:s3:::elsewhere/x")[0], 1)


class AssumeRoleSignedWithAUsersKey(StsTestCase):
    def test_session_policy_tags_and_duration(self):
        before = datetime.datetime.now(datetime.timezone.utc)
        answer = self.user_sts.assume_role(
            RoleArn=self.role_arn,
            RoleSessionName="tagged",
            DurationSeconds=900,
            Policy=common.policy(
                common.allow(["s3:GetObject", "s3:ListBucket"], "*")
            ),
            Tags=[{"Key": "team", "Value": "data"}],
            TransitiveTagKeys=["team"],
        )
        self.assertEqual(answer["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertEqual(len(answer["ResponseMetadata"]["RequestId"]), 36)
        expiration = answer["Credentials"]["Expiration"]
        self.assertIsInstance(expiration, datetime.datetime)
        lifetime = (expiration - before).total_seconds()
        self.assertTrue(890 <= lifetime <= 910, lifetime)
        self.assertIsInstance(answer["PackedPolicySize"], int)
        self.assertGreater(answer["PackedPolicySize"], 0)
        role_name = self.role_arn.rsplit("/", 1)[1]
        self.assertEqual(
            answer["AssumedRoleUser"]["Arn"],
            f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/tagged",
        )
        self.assertTrue(answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":tagged"))
        c = answer["Credentials"]
        session = common.keys_session(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
        self.assertEqual(
            common.sts(session).get_caller_identity()["Arn"], answer["AssumedRoleUser"]["Arn"]
        )
        creds = session.get_credentials()
        obj = f"arn:aws:s3:::{self.bucket}/a.csv"
        # The role allows s3:*, the session policy only reads: the intersection decides.
        self.assertEqual(authorize(creds, "s3:GetObject", obj), (0, "ALLOW"))
        self.assertEqual(authorize(creds, "s3:PutObject", obj)[0], 1)
        # The session tag satisfies the role's aws:PrincipalTag condition.
        bucket = f"arn:aws:s3:::{self.bucket}"
        self.assertEqual(authorize(creds, "s3:ListBucket", bucket), (0, "ALLOW"))

    def test_without_tags_the_tag_condition_fails(self):
        c = self.user_sts.assume_role(RoleArn=self.role_arn, RoleSessionName="untagged")
        self.assertNotIn("PackedPolicySize", c)
        creds = common.keys_session(
            c["Credentials"]["AccessKeyId"],
            c["Credentials"]["SecretAccessKey"],
            c["Credentials"]["SessionToken"],
        ).get_credentials()
        self.assertEqual(authorize(creds, "s3:ListBucket", f"arn:aws:s3:::{self.bucket}")[0], 1)


class BadInput(StsTestCase):
    def assert_code(self, code, call, *args, **kwargs):
        with self.assertRaises(botocore.exceptions.ClientError) as caught:
            call(*args, **kwargs)
        self.assertEqual(common.error_code(caught.exception), code, caught.exception)
        return caught.exception

    def unvalidated(self, session):
        """An STS client that sends what it is given (no client-side validation)."""
        config = common.NO_RETRIES.merge(botocore.config.Config(parameter_validation=False))
        return session.client("sts", endpoint_url=SIDECAR_HTTP, config=config)

    def test_authentication_failures(self):
        wrong = common.sts(common.keys_session(self.key_id, "not-the-secret" * 3))
        e = self.assert_code("SignatureDoesNotMatch", wrong.get_caller_identity)
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        unknown = common.sts(common.keys_session("AKIAAAAAAAAAAAAAAAAA", "x" * 40))
        e = self.assert_code("InvalidClientTokenId", unknown.get_caller_identity)
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        # A signature ten minutes old is outside AWS's five-minute window.
        old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(
            minutes=10
        )
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=old):
            e = self.assert_code("SignatureDoesNotMatch", self.user_sts.get_caller_identity)
        self.assertIn("Signature expired", e.response["Error"]["Message"])
        # A forged session token.
        forged = common.sts(common.keys_session(self.key_id, self.secret, "iamlet1.forged"))
        self.assert_code("InvalidClientTokenId", forged.get_caller_identity)

    def test_refusals_of_the_domain(self):
        # A user without sts:AssumeRole.
        _, key_id, secret = common.new_user()
        nobody = common.sts(common.keys_session(key_id, secret))
        common.eventually(nobody.get_caller_identity, "the second user to reach the sidecar")
        e = self.assert_code(
            "AccessDenied", nobody.assume_role, RoleArn=self.role_arn, RoleSessionName="nope"
        )
        self.assertEqual(e.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assert_code(
            "MalformedPolicyDocument",
            self.user_sts.assume_role,
            RoleArn=self.role_arn,
            RoleSessionName="bad-policy",
            Policy="this is not a policy",
        )
        self.assert_code(
            "PackedPolicyTooLarge",
            self.user_sts.assume_role,
            RoleArn=self.role_arn,
            RoleSessionName="big-tags",
            Tags=[{"Key": f"k{i:02d}" + "k" * 100, "Value": "v" * 250} for i in range(50)],
        )
        raw = self.unvalidated(common.keys_session(self.key_id, self.secret))
        e = self.assert_code("MissingParameter", raw.assume_role, RoleArn=self.role_arn)
        self.assertIn("RoleSessionName", e.response["Error"]["Message"])
        e = self.assert_code(
            "ValidationError",
            raw.assume_role,
            RoleArn=self.role_arn,
            RoleSessionName="short",
            DurationSeconds=10,
        )
        self.assertIn("durationSeconds", e.response["Error"]["Message"].replace("Duration", "duration"))
        e = self.assert_code("ValidationError", raw.get_access_key_info, AccessKeyId="bogus-key-id")
        self.assertIn("accessKeyId", e.response["Error"]["Message"])

    def test_web_identity_refusals(self):
        anonymous = common.sts(common.session())
        self.assert_code(
            "InvalidIdentityToken",
            anonymous.assume_role_with_web_identity,
            RoleArn=common.DEMO_WEB_IDENTITY_ROLE,
            RoleSessionName="bad-token",
            WebIdentityToken="not.a.jwt-at-all",
        )
        with open(common.WEB_IDENTITY_TOKEN_FILE) as f:
            token = f.read().strip()
        # The demo token's subject is not trusted by a role made for a user.
        self.assert_code(
            "AccessDenied",
            anonymous.assume_role_with_web_identity,
            RoleArn=self.role_arn,
            RoleSessionName="wrong-role",
            WebIdentityToken=token,
        )

    def test_raw_requests_answer_status_and_code(self):
        refused = 'iamlet_http_refused_total{edge="sts",code="InvalidAction"}'
        before = common.metric(SIDECAR_HTTP, refused)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cases = [
            ("Action=DoSomething&Version=2011-06-15", form, 400, "InvalidAction"),
            ("Action=GetCallerIdentity&Version=2010-05-08", form, 400, "InvalidAction"),
            ("Version=2011-06-15", form, 400, "MissingParameter"),
            ("Action=GetCallerIdentity&Version=%G0", form, 400, "MalformedQueryString"),
            ("Action=GetCallerIdentity&Action=GetCallerIdentity", form, 400, "InvalidParameterValue"),
            ('{"Action": "GetCallerIdentity"}', {"Content-Type": "application/json"}, 415, "UnsupportedMediaType"),
            ("Action=GetCallerIdentity&Version=2011-06-15", form, 403, "MissingAuthenticationToken"),
        ]
        for body, headers, status, code in cases:
            with self.subTest(body=body):
                got, answer_headers, text = common.raw(
                    SIDECAR_HTTP + "/", body=body, method="POST", headers=headers
                )
                self.assertEqual(got, status, text)
                self.assertEqual(common.xml_code(text), code, text)
                request_id = {k.lower(): v for k, v in answer_headers.items()}["x-amzn-requestid"]
                self.assertIn(f"<RequestId>{request_id}</RequestId>", text)
        # A GET carries its parameters in the query string.
        got, _, text = common.raw(SIDECAR_HTTP + "/?Action=Nope&Version=2011-06-15")
        self.assertEqual((got, common.xml_code(text)), (400, "InvalidAction"))
        self.assertGreaterEqual(common.metric(SIDECAR_HTTP, refused), before + 3)

    def test_an_oversized_body_is_refused_unread(self):
        url = urllib.parse.urlparse(SIDECAR_HTTP)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            connection.putrequest("POST", "/")
            connection.putheader("Content-Type", "application/x-www-form-urlencoded")
            connection.putheader("Content-Length", str((1 << 20) + 1))
            connection.endheaders()
            # Not a byte of the body is sent: the answer comes from the head alone.
            self.assertEqual(connection.getresponse().status, 413)
        finally:
            connection.close()


class ServiceModel(StsTestCase):
    """Every operation of botocore's STS model, generated from the model."""

    def test_every_operation_of_the_model(self):
        model = botocore.session.get_session().get_service_model("sts")
        operations = set(model.operation_names)
        self.assertTrue(IMPLEMENTED <= operations, IMPLEMENTED - operations)
        admin_key, admin_secret = demo_admin_keys()
        admin = common.keys_session(admin_key, admin_secret)
        with open(common.WEB_IDENTITY_TOKEN_FILE) as f:
            token = f.read().strip()
        calls = {
            "AssumeRole": (
                common.sts(common.keys_session(self.key_id, self.secret)),
                {"RoleArn": self.role_arn, "RoleSessionName": "model", "SourceIdentity": "model-walk"},
            ),
            "AssumeRoleWithWebIdentity": (
                common.sts(common.session()),
                {
                    "RoleArn": common.DEMO_WEB_IDENTITY_ROLE,
                    "RoleSessionName": "model",
                    "WebIdentityToken": token,
                },
            ),
            "GetSessionToken": (common.sts(admin), {"DurationSeconds": 900}),
            "GetCallerIdentity": (common.sts(admin), {}),
            "GetAccessKeyInfo": (common.sts(admin), {"AccessKeyId": self.key_id}),
        }
        self.assertEqual(set(calls), IMPLEMENTED)
        for name in sorted(operations):
            operation = model.operation_model(name)
            method = botocore.xform_name(name)
            with self.subTest(operation=name):
                if name in IMPLEMENTED:
                    client, params = calls[name]
                    answer = getattr(client, method)(**params)
                    self.assertEqual(missing_required(operation.output_shape, answer), [])
                    for member in operation.output_shape.members:
                        # Members iamlet has no value for, or that the call did not ask for.
                        optional = {
                            "PackedPolicySize",
                            "SessionTokenUtilization",
                            "SessionTokenSize",
                            "TrustedIdentityPropagationContext",
                            "SourceIdentity",
                        }
                        if member not in optional:
                            self.assertIn(member, answer, f"{name}: {member}")
                else:
                    client = common.sts(admin)
                    params = sample(operation.input_shape) if operation.input_shape else {}
                    with self.assertRaises(botocore.exceptions.ClientError) as caught:
                        getattr(client, method)(**params)
                    self.assertEqual(common.error_code(caught.exception), "InvalidAction")
                    self.assertEqual(
                        caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400
                    )
        # The source identity given is the one answered.
        client, params = calls["AssumeRole"]
        answer = client.assume_role(**{**params, "RoleSessionName": "model-2"})
        self.assertEqual(answer["SourceIdentity"], "model-walk")


class AwsCli(StsTestCase):
    def test_cli_get_caller_identity_and_assume_role(self):
        env = common.clean_env(AWS_PROFILE="demo-admin", AWS_ENDPOINT_URL_STS=SIDECAR_HTTP)
        done = common.run(["aws", "sts", "get-caller-identity", "--output", "json"], env=env)
        self.assertEqual(
            json.loads(done.stdout)["Arn"], f"arn:aws:iam::{ACCOUNT}:user/admin"
        )
        env = common.clean_env(
            AWS_ACCESS_KEY_ID=self.key_id,
            AWS_SECRET_ACCESS_KEY=self.secret,
            AWS_ENDPOINT_URL_STS=SIDECAR_HTTP,
        )
        done = common.run(
            [
                "aws", "sts", "assume-role",
                "--role-arn", self.role_arn,
                "--role-session-name", "cli",
                "--tags", "Key=team,Value=data",
                "--output", "json",
            ],
            env=env,
        )
        answer = json.loads(done.stdout)
        self.assertTrue(answer["Credentials"]["AccessKeyId"].startswith("ASIA"))
        self.assertTrue(answer["AssumedRoleUser"]["Arn"].endswith("/cli"))


if __name__ == "__main__":
    unittest.main()
