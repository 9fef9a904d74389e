// SAML IdP metadata for the console suite's SAML provider: a throwaway self-signed RSA
// certificate (openssl, valid ten years) in the shape IdPs publish, longer than IAM's
// 1,000-character minimum.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function samlMetadata(work) {
  const key = join(work, 'saml-idp.key');
  const cert = join(work, 'saml-idp.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '3650',
    '-subj', '/CN=idp.console-suite.example', '-keyout', key, '-out', cert], { stdio: 'ignore', timeout: 30_000 });
  const der = readFileSync(cert, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const lines = der.match(/.{1,64}/g).map((l) => `          ${l}`).join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.console-suite.example/saml">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo>
        <ds:X509Data>
          <ds:X509Certificate>
${lines}
          </ds:X509Certificate>
        </ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.console-suite.example/saml/sso/redirect"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://idp.console-suite.example/saml/sso/post"/>
  </md:IDPSSODescriptor>
  <md:Organization>
    <md:OrganizationName xml:lang="en">The console suite's throwaway identity provider</md:OrganizationName>
    <md:OrganizationDisplayName xml:lang="en">Console suite IdP</md:OrganizationDisplayName>
    <md:OrganizationURL xml:lang="en">https://idp.console-suite.example/</md:OrganizationURL>
  </md:Organization>
</md:EntityDescriptor>
`;
}
