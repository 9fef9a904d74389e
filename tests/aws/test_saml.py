"""SAML providers, OIDC provider and MFA device tags, GetMFADevice and ResyncMFADevice, through
unmodified boto3 against the real `iamlet` (botocore parses every answer with its model)."""

import datetime
import time
import unittest

from botocore.exceptions import ClientError

from common import ACCOUNT, unique
from test_iam import SAML_METADATA, iam, totp


def code_of(error):
    return error.exception.response["Error"]["Code"]


class SamlProviders(unittest.TestCase):
    def setUp(self):
        self.c = iam()

    def test_a_provider_is_created_read_listed_updated_tagged_and_deleted(self):
        name = unique("okta")
        created = self.c.create_saml_provider(
            Name=name,
            SAMLMetadataDocument=SAML_METADATA,
            Tags=[{"Key": "team", "Value": "identity"}],
        )
        arn = created["SAMLProviderArn"]
        self.assertEqual(arn, f"arn:aws:iam::{ACCOUNT}:saml-provider/{name}")
        self.assertEqual(created["Tags"], [{"Key": "team", "Value": "identity"}])

        got = self.c.get_saml_provider(SAMLProviderArn=arn)
        self.assertEqual(got["SAMLMetadataDocument"], SAML_METADATA)
        self.assertRegex(got["SAMLProviderUUID"], r"^[A-Z0-9]{22,64}$")
        self.assertIsInstance(got["CreateDate"], datetime.datetime)
        self.assertNotIn("ValidUntil", got)
        listed = self.c.list_saml_providers()["SAMLProviderList"]
        self.assertIn(arn, [p["Arn"] for p in listed])

        # Metadata that is not an IdP's is refused, and changes nothing.
        with self.assertRaises(ClientError) as refused:
            self.c.update_saml_provider(
                SAMLProviderArn=arn,
                SAMLMetadataDocument=SAML_METADATA.replace("IDPSSODescriptor", "SPSSODescriptor"),
            )
        self.assertEqual(code_of(refused), "InvalidInput")
        self.assertIn("Could not parse metadata", str(refused.exception))
        dated = SAML_METADATA.replace(
            'entityID="https://idp.example.com/saml"',
            'entityID="https://idp.example.com/saml" validUntil="2100-01-01T00:00:00Z"',
        )
        updated = self.c.update_saml_provider(SAMLProviderArn=arn, SAMLMetadataDocument=dated)
        self.assertEqual(updated["SAMLProviderArn"], arn)
        got = self.c.get_saml_provider(SAMLProviderArn=arn)
        self.assertEqual(
            got["ValidUntil"], datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)
        )

        self.c.tag_saml_provider(SAMLProviderArn=arn, Tags=[{"Key": "env", "Value": "prod"}])
        self.c.untag_saml_provider(SAMLProviderArn=arn, TagKeys=["team"])
        tags = self.c.list_saml_provider_tags(SAMLProviderArn=arn)
        self.assertEqual(tags["Tags"], [{"Key": "env", "Value": "prod"}])
        self.assertFalse(tags["IsTruncated"])

        self.c.delete_saml_provider(SAMLProviderArn=arn)
        with self.assertRaises(ClientError) as gone:
            self.c.get_saml_provider(SAMLProviderArn=arn)
        self.assertEqual(code_of(gone), "NoSuchEntity")


class TagsAndMfa(unittest.TestCase):
    def setUp(self):
        self.c = iam()

    def test_oidc_provider_tags_page_by_max_items(self):
        arn = self.c.create_open_id_connect_provider(
            Url=f"https://{unique('oidc')}.example.com", ClientIDList=["client"]
        )["OpenIDConnectProviderArn"]
        tags = [{"Key": f"k{i}", "Value": str(i)} for i in range(3)]
        self.c.tag_open_id_connect_provider(OpenIDConnectProviderArn=arn, Tags=tags)
        first = self.c.list_open_id_connect_provider_tags(
            OpenIDConnectProviderArn=arn, MaxItems=2
        )
        self.assertTrue(first["IsTruncated"])
        rest = self.c.list_open_id_connect_provider_tags(
            OpenIDConnectProviderArn=arn, Marker=first["Marker"]
        )
        self.assertEqual(first["Tags"] + rest["Tags"], tags)
        self.assertEqual(
            self.c.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["Tags"], tags
        )
        self.c.untag_open_id_connect_provider(OpenIDConnectProviderArn=arn, TagKeys=["k1"])
        left = self.c.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=arn)["Tags"]
        self.assertEqual([t["Key"] for t in left], ["k0", "k2"])
        with self.assertRaises(ClientError) as reserved:
            self.c.tag_open_id_connect_provider(
                OpenIDConnectProviderArn=arn, Tags=[{"Key": "aws:x", "Value": "1"}]
            )
        self.assertEqual(code_of(reserved), "InvalidInput")

    def test_a_drifted_device_resyncs_and_get_mfa_device_shows_it(self):
        user = unique("mfa-user")
        self.c.create_user(UserName=user)
        device = self.c.create_virtual_mfa_device(
            VirtualMFADeviceName=unique("phone"), Tags=[{"Key": "owner", "Value": user}]
        )["VirtualMFADevice"]
        serial, seed = device["SerialNumber"], device["Base32StringSeed"].decode()
        self.assertEqual(device["Tags"], [{"Key": "owner", "Value": user}])
        step = int(time.time()) // 30
        self.c.enable_mfa_device(
            UserName=user,
            SerialNumber=serial,
            AuthenticationCode1=totp(seed, step - 1),
            AuthenticationCode2=totp(seed, step),
        )
        got = self.c.get_mfa_device(SerialNumber=serial, UserName=user)
        self.assertEqual(got["UserName"], user)
        self.assertEqual(got["SerialNumber"], serial)
        self.assertIsInstance(got["EnableDate"], datetime.datetime)

        # A device whose clock runs five minutes ahead: codes that are not consecutive are
        # refused, consecutive ones resync it.
        ahead = step + 10
        with self.assertRaises(ClientError) as refused:
            self.c.resync_mfa_device(
                UserName=user,
                SerialNumber=serial,
                AuthenticationCode1=totp(seed, ahead),
                AuthenticationCode2=totp(seed, ahead + 2),
            )
        self.assertEqual(code_of(refused), "InvalidAuthenticationCode")
        self.c.resync_mfa_device(
            UserName=user,
            SerialNumber=serial,
            AuthenticationCode1=totp(seed, ahead),
            AuthenticationCode2=totp(seed, ahead + 1),
        )
        self.assertEqual(
            self.c.list_mfa_device_tags(SerialNumber=serial)["Tags"],
            [{"Key": "owner", "Value": user}],
        )


if __name__ == "__main__":
    unittest.main()
