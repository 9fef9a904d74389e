// Issue 21's browser suite: the guide's steps 2–4 in the console, in one headless Chromium,
// then the bad-input cases (stored XSS, CSRF). Run by tests/console/run.sh, which starts
// `iamlet up` and sets the environment lib.mjs reads. Each step prints one line and saves
// NN-name.png; the first failure ends the run with status 1.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  ACCOUNT, ADMIN_USER, CONSOLE, PASSWORD_FILE, WORK,
  admin, alertText, check, choose, documentOf, expectDecision, field, fill, follow, iamNav, launch, nav,
  newPage, noAlert, open, pick, shownText, showing, signIn, signOut, statusNote, step, strictCsp,
  submit, tick,
} from './lib.mjs';

const USER = 'carol';
const USER_ARN = `arn:aws:iam::${ACCOUNT}:user/${USER}`;
const GROUP = 'console-readers';
const FIRST_PASSWORD = 'Console-First-Pass-1!';
const NEW_PASSWORD = 'Console-Own-Pass-2@';
const ROLES = {
  service: 'console-ec2-reports',
  account: 'console-partner',
  web: 'console-web-identity',
  saml: 'console-saml',
  custom: 'console-custom-trust',
};
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/${ROLES.service}`;
const VISUAL_POLICY = 'ConsoleReportsRead';
const JSON_POLICY = 'ConsoleReportsUpload';
const XSS_POLICY = 'ConsoleXssProbe';
const BUCKET = 'console-reports';
const READ = ['s3:GetObject', `arn:aws:s3:::${BUCKET}/q4/summary.csv`];
const UPLOAD = ['s3:PutObject', `arn:aws:s3:::${BUCKET}/uploads/new.csv`];
const XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">';
const OIDC_HOST = 'oidc.demo.iamlet.dev';

const adminPassword = readFileSync(PASSWORD_FILE, 'utf8').trim();
const browser = await launch();
let failed = false;
try {
  await flow();
} catch {
  failed = true;
} finally {
  await browser.close().catch(() => {});
}
process.exit(failed ? 1 : 0);

async function flow() {
  const page = await newPage(browser, 'admin');
  showing(page);

  // ---- The guide's step 2: sign in, the dashboard.
  await step('signin', async () => {
    const response = await open(page, '/signin');
    strictCsp(response, 'the sign-in page');
    await fill(page, 'Account ID or alias', ACCOUNT);
    await fill(page, 'IAM user name', ADMIN_USER);
    await fill(page, 'Password', adminPassword);
  });

  await step('dashboard', async () => {
    await submit(page, 'Sign in');
    await noAlert(page);
    await iamNav(page).waitFor();
    const links = ['Dashboard', 'Users', 'User groups', 'Roles', 'Policies', 'Identity providers',
      'Account settings', 'Event history'];
    const navigation = iamNav(page);
    for (const link of links) {
      await navigation.getByRole('link', { name: link, exact: true }).waitFor();
    }
    await page.getByRole('button', { name: 'Sign out', exact: true }).waitFor();
    // The session cookie is out of scripts' reach and never sent cross-site.
    const cookies = await page.context().cookies();
    check(cookies.length > 0, 'signing in set no cookie');
    for (const c of cookies) {
      check(c.httpOnly, `cookie ${c.name} is not HttpOnly`);
      check(c.sameSite === 'Strict', `cookie ${c.name} is SameSite=${c.sameSite}, not Strict`);
    }
    return `${ADMIN_USER} of ${ACCOUNT} signed in; the nav has all ${links.length} links; `
      + `${cookies.length} cookie(s), HttpOnly, SameSite=Strict`;
  });

  // ---- Step 3: a group with a policy, then a user in it with both kinds of access.
  await step('create-group', async () => {
    await nav(page, 'User groups');
    await follow(page, 'Create group');
    await fill(page, 'User group name', GROUP);
    await tick(page, 'IAMReadOnlyAccess');
    await submit(page, 'Create group');
    const note = await statusNote(page);
    const got = await admin('list-attached-group-policies', '--group-name', GROUP);
    const names = got.AttachedPolicies.map((p) => p.PolicyName);
    check(names.join() === 'IAMReadOnlyAccess', `the group has policies ${names}`);
    return note;
  });

  await step('add-user-details', async () => {
    await nav(page, 'Users');
    await follow(page, 'Add user');
    await fill(page, 'User name', USER);
    await tick(page, 'Programmatic access (access key)');
    await tick(page, 'Console access (password)');
    await choose(page, 'Custom password');
    await fill(page, 'Custom password', FIRST_PASSWORD);
    await tick(page, 'User must create a new password at next sign-in');
  });
  await step('add-user-permissions', async () => {
    await submit(page, 'Next');
    await noAlert(page);
    await choose(page, 'Add user to group');
    await tick(page, GROUP);
  });
  await step('add-user-tags', async () => {
    await submit(page, 'Next');
    await noAlert(page);
    await fill(page, 'Tag key 1', 'team');
    await fill(page, 'Tag value 1', 'platform');
  });
  await step('add-user-review', async () => {
    await submit(page, 'Next');
    await noAlert(page);
    const text = await shownText(page);
    for (const want of [USER, GROUP, 'team', 'platform']) {
      check(text.includes(want), `the review does not show ${want}`);
    }
  });
  let secret;
  await step('add-user-created', async () => {
    await submit(page, 'Create user');
    await noAlert(page);
    const keyId = (await page.locator('#access-key-id').innerText()).trim();
    secret = (await page.locator('#secret-access-key').innerText()).trim();
    const password = (await page.locator('#console-password').innerText()).trim();
    check(/^AKIA[A-Z0-9]{16}$/.test(keyId), `the access key id is ${JSON.stringify(keyId)}`);
    check(secret.length === 40, `the secret access key has ${secret.length} characters, not 40`);
    check(password === FIRST_PASSWORD, 'the password shown is not the custom password');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download .csv file', exact: true }).click(),
    ]);
    const csvPath = join(WORK, 'credentials.csv');
    await download.saveAs(csvPath);
    const csv = readFileSync(csvPath, 'utf8');
    for (const [what, value] of [['user name', USER], ['access key id', keyId], ['secret', secret]]) {
      check(csv.includes(value), `the .csv has no ${what}`);
    }
    const user = await admin('get-user', '--user-name', USER);
    check(user.User.Arn === USER_ARN, `get-user says ${user.User.Arn}`);
    const tags = user.User.Tags ?? (await admin('list-user-tags', '--user-name', USER)).Tags;
    check(tags.some((t) => t.Key === 'team' && t.Value === 'platform'), `the user's tags are ${JSON.stringify(tags)}`);
    const groups = await admin('list-groups-for-user', '--user-name', USER);
    check(groups.Groups.some((g) => g.GroupName === GROUP), `${USER} is not in ${GROUP}`);
    const keys = await admin('list-access-keys', '--user-name', USER);
    check(keys.AccessKeyMetadata.some((k) => k.AccessKeyId === keyId), `${keyId} is not ${USER}'s key`);
    return `${keyId}, secret and password shown, ${download.suggestedFilename()} downloaded`;
  });

  await step('secret-shown-once', async () => {
    await open(page, `/users/details/${USER}`);
    await follow(page, 'Security credentials');
    const text = await shownText(page);
    check(!text.includes(secret), 'the secret access key is shown again on the Security credentials tab');
    check(!text.includes(FIRST_PASSWORD), 'the password is shown again on the Security credentials tab');
  });

  await step('sidecar-user-before', async () => {
    // The new user exists at the sidecar, and its group grants no S3 access.
    const read = await expectDecision(USER_ARN, ...READ, 'DENY');
    const upload = await expectDecision(USER_ARN, ...UPLOAD, 'DENY');
    return `${USER}: ${READ[0]} ${read}, ${UPLOAD[0]} ${upload}`;
  });

  // ---- Step 4: a role for each trusted-entity type (createRole, below).

  await step('role-aws-service', async () => {
    const { trust } = await createRole(page, 'AWS service', ROLES.service, async () => {
      await fill(page, 'Service', 'ec2.amazonaws.com');
    });
    const s = trust[0];
    check([s.Principal?.Service].flat().includes('ec2.amazonaws.com'), `the trust policy is ${JSON.stringify(trust)}`);
    check([s.Action].flat().includes('sts:AssumeRole'), `the trust policy is ${JSON.stringify(trust)}`);
    return 'trusts ec2.amazonaws.com';
  });

  await step('sidecar-role-before', async () => {
    const read = await expectDecision(ROLE_ARN, ...READ, 'DENY');
    return `${ROLES.service}: ${READ[0]} ${read}`;
  });

  await step('role-aws-account', async () => {
    const { trust } = await createRole(page, 'AWS account', ROLES.account, async () => {
      await fill(page, 'Account ID', '444455556666');
      await tick(page, 'Require external ID');
      await fill(page, 'External ID', 'console-partner-42');
      await tick(page, 'Require MFA');
    });
    const s = trust[0];
    const text = JSON.stringify(trust);
    check([s.Principal?.AWS].flat().some((p) => p === '444455556666' || p === 'arn:aws:iam::444455556666:root'),
      `the trust policy is ${text}`);
    check(s.Condition?.StringEquals?.['sts:ExternalId'] === 'console-partner-42', `no external id condition: ${text}`);
    check(String(s.Condition?.Bool?.['aws:MultiFactorAuthPresent']) === 'true', `no MFA condition: ${text}`);
    return 'trusts 444455556666 with an external id and MFA';
  });

  await step('role-web-identity', async () => {
    const { trust } = await createRole(page, 'Web identity', ROLES.web, async () => {
      await pick(page, 'Identity provider', new RegExp(OIDC_HOST.replaceAll('.', '\\.')));
      await fill(page, 'Audience', 'console-suite');
    });
    const s = trust[0];
    const text = JSON.stringify(trust);
    check([s.Principal?.Federated].flat().includes(`arn:aws:iam::${ACCOUNT}:oidc-provider/${OIDC_HOST}`), `the trust policy is ${text}`);
    check([s.Action].flat().includes('sts:AssumeRoleWithWebIdentity'), `the trust policy is ${text}`);
    const aud = s.Condition?.StringEquals?.[`${OIDC_HOST}:aud`];
    check([aud].flat().includes('console-suite'), `no audience condition: ${text}`);
    return `trusts ${OIDC_HOST} for audience console-suite`;
  });

  await step('role-saml', async () => samlRole(page));

  await step('role-custom-trust', async () => {
    const trustPolicy = {
      Version: '2012-10-17',
      Statement: [{
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
        Action: ['sts:AssumeRole', 'sts:TagSession'],
      }],
    };
    // The role's description carries the XSS probe, opened later on the role's page.
    const { trust } = await createRole(page, 'Custom trust policy', ROLES.custom, async () => {
      await fill(page, 'Trust policy', JSON.stringify(trustPolicy, null, 2));
    }, `Custom trust ${XSS}`);
    check([trust[0].Action].flat().includes('sts:TagSession'), `the trust policy is ${JSON.stringify(trust)}`);
    return 'the pasted trust policy, stored as written';
  });

  // ---- Step 4 (policies): the visual editor and the JSON editor.
  await step('policy-visual-editor', async () => {
    await nav(page, 'Policies');
    await follow(page, 'Create policy');
    await submit(page, 'Visual');
    await noAlert(page);
    await pick(page, 'Service', /^s3$/);
    await submit(page, 'Choose service');
    await noAlert(page);
    await tick(page, 'GetObject');
    await tick(page, 'ListBucket');
    await choose(page, 'Specific resources');
    await fill(page, 'ARN for object', `arn:aws:s3:::${BUCKET}/*`);
    await fill(page, 'ARN for bucket', `arn:aws:s3:::${BUCKET}`);
  });
  await step('policy-visual-review', async () => {
    await submit(page, 'Next');
    await noAlert(page);
    await fill(page, 'Policy name', VISUAL_POLICY);
    await fill(page, 'Description', 'Read the reports bucket (visual editor).');
  });
  await step('policy-visual-created', async () => {
    await submit(page, 'Create policy');
    const note = await statusNote(page);
    const doc = await policyDocument(VISUAL_POLICY);
    const text = JSON.stringify(doc);
    for (const want of ['s3:GetObject', 's3:ListBucket', `arn:aws:s3:::${BUCKET}/*`]) {
      check(text.includes(want), `${VISUAL_POLICY} has no ${want}: ${text}`);
    }
    return note;
  });

  await step('policy-json-editor', async () => {
    await nav(page, 'Policies');
    await follow(page, 'Create policy');
    await submit(page, 'JSON');
    await noAlert(page);
    const doc = {
      Version: '2012-10-17',
      Statement: [{
        Sid: 'UploadReports',
        Effect: 'Allow',
        Action: 's3:PutObject',
        Resource: `arn:aws:s3:::${BUCKET}/uploads/*`,
      }],
    };
    // The editor validates as one types (console.js posts to /console/api/validate).
    await fill(page, 'Policy document', '{"Version": "2012-10-17", "Statement": [');
    await page.locator('#findings').getByText('JSON syntax', { exact: false }).waitFor({ timeout: 10000 });
    await fill(page, 'Policy document', JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 's3:GetObjekt', Resource: '*' }] }, null, 2));
    await page.locator('#findings li.error').first().waitFor({ timeout: 10000 });
    await fill(page, 'Policy document', JSON.stringify(doc, null, 2));
    await page.locator('#findings').getByText('No findings: the policy is valid.').waitFor({ timeout: 10000 });
    return 'live validation: a syntax error, an unknown action, then no findings';
  });
  await step('policy-json-created', async () => {
    await submit(page, 'Next');
    await noAlert(page);
    await fill(page, 'Policy name', JSON_POLICY);
    await fill(page, 'Description', 'Upload to the reports bucket (JSON editor).');
    await submit(page, 'Create policy');
    const note = await statusNote(page);
    const text = JSON.stringify(await policyDocument(JSON_POLICY));
    check(text.includes('UploadReports'), `${JSON_POLICY} is not the document typed: ${text}`);
    return note;
  });

  // ---- Attach them from the Permissions tabs.
  await step('user-add-permissions', async () => {
    await open(page, `/users/details/${USER}`);
    await follow(page, 'Permissions');
    await follow(page, 'Add permissions');
    await tick(page, VISUAL_POLICY);
    await tick(page, JSON_POLICY);
    await submit(page, 'Add permissions');
    const note = await statusNote(page);
    const got = await admin('list-attached-user-policies', '--user-name', USER);
    const names = got.AttachedPolicies.map((p) => p.PolicyName);
    check(names.includes(VISUAL_POLICY) && names.includes(JSON_POLICY), `${USER} has ${names}`);
    const text = await shownText(page);
    check(text.includes(VISUAL_POLICY) && text.includes(JSON_POLICY), 'the Permissions tab does not list both policies');
    return note;
  });

  await step('role-add-permissions', async () => {
    await open(page, `/roles/details/${ROLES.service}`);
    await follow(page, 'Permissions');
    // A role's Permissions tab holds the Add permissions checklist itself.
    await tick(page, VISUAL_POLICY);
    await submit(page, 'Add permissions');
    const note = await statusNote(page);
    const got = await admin('list-attached-role-policies', '--role-name', ROLES.service);
    check(got.AttachedPolicies.some((p) => p.PolicyName === VISUAL_POLICY), `${ROLES.service} lacks ${VISUAL_POLICY}`);
    return note;
  });

  await step('sidecar-after', async () => {
    const read = await expectDecision(USER_ARN, ...READ, 'ALLOW');
    const upload = await expectDecision(USER_ARN, ...UPLOAD, 'ALLOW');
    const roleRead = await expectDecision(ROLE_ARN, ...READ, 'ALLOW');
    // Least privilege: the role got the read policy only.
    const roleUpload = await expectDecision(ROLE_ARN, ...UPLOAD, 'DENY');
    return `${USER}: ${READ[0]} ${read}, ${UPLOAD[0]} ${upload}; ${ROLES.service}: ${READ[0]} ${roleRead}, ${UPLOAD[0]} ${roleUpload}`;
  });

  // ---- The new user signs in and is refused what its policies do not allow.
  await step('sign-out', async () => {
    await signOut(page);
    const response = await page.goto(`${CONSOLE}/users`);
    check(new URL(page.url()).pathname.startsWith('/console/signin'),
      `after signing out /console/users answered ${response?.status()} at ${page.url()}, not the sign-in page`);
  });

  await step('new-user-password-change', async () => {
    await signIn(page, USER, FIRST_PASSWORD);
    await noAlert(page);
    await fill(page, 'Old password', FIRST_PASSWORD);
    await fill(page, 'New password', NEW_PASSWORD);
    await fill(page, 'Retype new password', NEW_PASSWORD);
  });
  await step('new-user-signed-in', async () => {
    await submit(page, 'Change password');
    await noAlert(page);
    await iamNav(page).getByRole('link', { name: 'Users', exact: true }).waitFor();
    return `${USER} changed the password and is signed in`;
  });

  await step('new-user-refused', async () => {
    await nav(page, 'Users');
    await follow(page, 'Add user');
    await fill(page, 'User name', 'console-mallory');
    for (let i = 0; i < 3; i += 1) {
      await submit(page, 'Next');
      await noAlert(page);
    }
    await submit(page, 'Create user');
    const refusal = await alertText(page);
    check(refusal.includes('AccessDenied'), `the refusal does not say AccessDenied: ${JSON.stringify(refusal)}`);
    check(refusal.includes(`is not authorized to perform: iam:CreateUser`),
      `the refusal is not AWS's message: ${JSON.stringify(refusal)}`);
    const users = await admin('list-users');
    check(!users.Users.some((u) => u.UserName === 'console-mallory'), 'the refused user was created');
    return refusal.slice(0, 160);
  });

  await step('new-user-signed-out', async () => {
    await signOut(page);
    await signIn(page, ADMIN_USER, adminPassword);
    await noAlert(page);
    await iamNav(page).waitFor();
  });

  // ---- Stored and reflected XSS: the probe is shown as text and never runs.
  const inert = async (what) => {
    // An onerror handler would have fired once the page (and its broken image) loaded.
    await page.waitForLoadState('load');
    const xss = await page.evaluate(() => window.__xss);
    check(xss === undefined, `${what}: the injected script ran (window.__xss = ${xss})`);
    const injected = await page.evaluate(() =>
      document.querySelectorAll('img[src="x"], script:not([src])').length);
    check(injected === 0, `${what}: the page holds ${injected} injected element(s)`);
  };

  await step('xss-policy-description', async () => {
    await nav(page, 'Policies');
    await follow(page, 'Create policy');
    await submit(page, 'JSON');
    await noAlert(page);
    await fill(page, 'Policy document', JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Action: 's3:ListBucket', Resource: `arn:aws:s3:::${BUCKET}` }],
    }));
    await submit(page, 'Next');
    await noAlert(page);
    await fill(page, 'Policy name', XSS_POLICY);
    await fill(page, 'Description', XSS);
    await submit(page, 'Create policy');
    await statusNote(page);
    await inert('the page after creating the policy');
    await nav(page, 'Policies');
    await inert('the policy list');
    await follow(page, XSS_POLICY);
    await inert('the policy page');
    const response = await page.reload();
    strictCsp(response, 'the policy page');
    check((await shownText(page)).includes(XSS), 'the policy page does not show the description as text');
    return 'shown literally, not run';
  });

  await step('xss-role-description', async () => {
    await nav(page, 'Roles');
    await inert('the role list');
    await follow(page, ROLES.custom);
    await inert('the role page');
    check((await shownText(page)).includes(XSS), 'the role page does not show the description as text');
    return 'shown literally, not run';
  });

  await step('xss-tag-value', async () => {
    // IAM's tag values cannot hold `<`: the console refuses the tag with IAM's ValidationError,
    // whose message echoes the value, which must stay text too.
    await nav(page, 'Users');
    await follow(page, 'Add user');
    await fill(page, 'User name', 'console-xss-tag');
    await tick(page, 'Programmatic access (access key)');
    await submit(page, 'Next');
    await noAlert(page);
    await submit(page, 'Next');
    await noAlert(page);
    await fill(page, 'Tag key 1', 'note');
    await fill(page, 'Tag value 1', XSS);
    await submit(page, 'Next');
    let outcome = await alertText(page);
    if (!outcome) {
      await submit(page, 'Create user');
      outcome = await alertText(page);
    }
    await inert('the tag refusal');
    if (outcome) {
      check(/ValidationError|InvalidInput/.test(outcome), `the tag was refused with ${JSON.stringify(outcome)}`);
      // IAM's message echoes the value: as text.
      check(outcome.includes('<script>window.__xss=1'), `the refusal does not show the value as text: ${JSON.stringify(outcome)}`);
      const users = await admin('list-users');
      check(!users.Users.some((u) => u.UserName === 'console-xss-tag'), 'the refused user was created');
      return `refused: ${outcome.slice(0, 120)}`;
    }
    // Stored after all: then the Tags tab must show it as text.
    await open(page, '/users/console-xss-tag');
    await follow(page, 'Tags');
    await inert('the Tags tab');
    check((await shownText(page)).includes(XSS), 'the Tags tab does not show the value as text');
    return 'stored and shown literally, not run';
  });

  await step('xss-user-name', async () => {
    await nav(page, 'Users');
    await follow(page, 'Add user');
    await fill(page, 'User name', XSS);
    await submit(page, 'Next');
    let outcome = await alertText(page);
    for (let i = 0; !outcome && i < 3; i += 1) {
      await submit(page, i === 2 ? 'Create user' : 'Next');
      outcome = await alertText(page);
    }
    await inert('the user-name refusal');
    check(/ValidationError/.test(outcome), `the name was refused with ${JSON.stringify(outcome)}`);
    check(outcome.includes('<script>window.__xss=1'), `the refusal does not show the name as text: ${JSON.stringify(outcome)}`);
    return `refused: ${outcome.slice(0, 120)}`;
  });

  // ---- CSRF: the session cookie alone does not make a state change.
  await step('csrf', async () => {
    await nav(page, 'User groups');
    await follow(page, 'Create group');
    const nameField = await field(page, 'User group name').getAttribute('name');
    const form = page.locator('form').filter({ has: field(page, 'User group name') });
    const { action, fields } = await form.evaluate((f) => ({
      action: f.action,
      fields: [...new FormData(f)].filter(([, v]) => typeof v === 'string'),
    }));
    const tokenNames = fields.map(([k]) => k).filter((k) => /csrf/i.test(k));
    check(tokenNames.length > 0, `the Create group form has no CSRF field: ${fields.map(([k]) => k)}`);
    const post = async (group, token, origin, padding = '') => {
      const body = new URLSearchParams();
      for (const [k, v] of fields) {
        if (k === nameField) body.append(k, group);
        else if (tokenNames.includes(k)) { if (token !== undefined) body.append(k, token); }
        else body.append(k, v);
      }
      if (padding) body.append('padding', padding);
      const response = await page.request.post(action, {
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          ...(origin ? { origin } : {}),
        },
        data: body.toString(),
        maxRedirects: 0,
      });
      return response.status();
    };
    const missing = await post('console-csrf-missing', undefined);
    check(missing === 403, `a POST without the CSRF token answered ${missing}, not 403`);
    const forged = await post('console-csrf-forged', 'forged-token-0000');
    check(forged === 403, `a POST with a forged CSRF token answered ${forged}, not 403`);
    // The form's own token, sent by a page of another site (what a CSRF attack's form does).
    const real = Object.fromEntries(fields)[tokenNames[0]];
    const crossSite = await post('console-csrf-cross-site', real, 'http://attacker.example');
    check(crossSite === 403, `a POST from another origin answered ${crossSite}, not 403`);
    // The same request with the form's own token works: the refusals were the token's doing.
    const control = await post('console-csrf-control', real);
    check(control < 400, `the same POST with the form's token answered ${control}`);
    // The same form submitted twice (its one-time token again) does nothing the second time.
    const twice = await post('console-csrf-twice', real);
    check(twice === 409, `the form submitted a second time answered ${twice}, not 409`);
    // A form far over the console's bound is refused before it is read.
    const oversized = await post('console-csrf-oversized', real, undefined, 'x'.repeat(256 * 1024));
    check(oversized === 413, `a 256 KiB form answered ${oversized}, not 413`);
    const groups = (await admin('list-groups')).Groups.map((g) => g.GroupName);
    for (const refused of ['console-csrf-missing', 'console-csrf-forged', 'console-csrf-cross-site',
      'console-csrf-twice', 'console-csrf-oversized']) {
      check(!groups.includes(refused), `a refused POST created the group ${refused}`);
    }
    check(groups.includes('console-csrf-control'), `the control POST created no group: ${groups}`);
    await nav(page, 'User groups');
    const text = await shownText(page);
    check(!/console-csrf-(missing|forged|cross-site|twice|oversized)/.test(text), 'the group list shows a refused group');
    check(text.includes('console-csrf-control'), 'the group list does not show the control group');
    return `no token: ${missing}, forged: ${forged}, another origin: ${crossSite}, the form's own token: ${control}, `
      + `submitted twice: ${twice}, 256 KiB: ${oversized}`;
  });

  await step('event-history', async () => {
    // The audit trail shows the new user's refused call, found with the page's own filters.
    await nav(page, 'Event history');
    await fill(page, 'Actor', USER);
    await pick(page, 'Outcome', /^AccessDenied$/);
    await submit(page, 'Apply');
    await noAlert(page);
    const rows = await page.getByRole('table').getByRole('row').allInnerTexts();
    const refused = rows.filter((r) => r.includes('CreateUser') && r.includes('AccessDenied'));
    check(refused.length > 0, `the event history shows no refused CreateUser by ${USER}: ${JSON.stringify(rows.slice(0, 5))}`);
    return `${refused.length} refused CreateUser by ${USER} in the trail`;
  });
}

/**
 * The Create role wizard: the trusted entity `type` (its fields filled by `fillTrust`), no
 * permissions (they are attached from the Permissions tab later), a name, a description and
 * a 2-hour maximum session. Returns the success note and the stored trust policy's statements.
 */
async function createRole(page, type, name, fillTrust, description = `Made by the console suite (${type}).`) {
  await nav(page, 'Roles');
  await follow(page, 'Create role');
  await choose(page, type);
  await fillTrust();
  await submit(page, 'Next');
  await noAlert(page);
  // No permissions here: they are attached from the Permissions tab later.
  await submit(page, 'Next');
  await noAlert(page);
  await fill(page, 'Role name', name);
  await fill(page, 'Description', description);
  const duration = await pick(page, 'Maximum session duration', /^2 hours$/);
  await submit(page, 'Create role');
  const note = await statusNote(page);
  const role = await admin('get-role', '--role-name', name);
  check(role.Role.MaxSessionDuration === 7200, `${name}'s maximum session is ${role.Role.MaxSessionDuration} s, not the ${duration} chosen`);
  check(role.Role.Description === description, `${name}'s description is ${JSON.stringify(role.Role.Description)}`);
  return { note, trust: documentOf(role.Role.AssumeRolePolicyDocument).Statement };
}

/** The default version's document of a customer managed policy, through the admin API. */
async function policyDocument(name) {
  const arn = `arn:aws:iam::${ACCOUNT}:policy/${name}`;
  const policy = await admin('get-policy', '--policy-arn', arn);
  const version = await admin('get-policy-version', '--policy-arn', arn, '--version-id', policy.Policy.DefaultVersionId);
  return documentOf(version.PolicyVersion.Document);
}

/**
 * The SAML role: a SAML provider first, from the Identity providers page (metadata with a
 * throwaway certificate), then the role trusting it.
 */
async function samlRole(page) {
  await nav(page, 'Identity providers');
  const { samlMetadata } = await import('./saml.mjs');
  await fill(page, 'Provider name', 'ConsoleIdP');
  await fill(page, 'Metadata document', samlMetadata(WORK));
  await submit(page, 'Add SAML provider');
  await statusNote(page);
  const providers = await admin('list-saml-providers');
  const providerArn = `arn:aws:iam::${ACCOUNT}:saml-provider/ConsoleIdP`;
  check(providers.SAMLProviderList.some((p) => p.Arn === providerArn), `no ${providerArn}: ${JSON.stringify(providers)}`);
  const { trust } = await createRole(page, 'SAML 2.0 federation', ROLES.saml, async () => {
    await pick(page, 'SAML provider', /^ConsoleIdP$/);
  });
  const s = trust[0];
  check([s.Principal?.Federated].flat().includes(providerArn), `the trust policy is ${JSON.stringify(trust)}`);
  check([s.Action].flat().includes('sts:AssumeRoleWithSAML'), `the trust policy is ${JSON.stringify(trust)}`);
  return 'SAML provider ConsoleIdP added from Identity providers; the role trusts it';
}
