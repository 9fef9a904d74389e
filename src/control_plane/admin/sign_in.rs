//! Console sign-in: an IAM user's password (and MFA code, when the user has a device) for a
//! session of temporary credentials, as AWS's console signs a user in.
//!
//! The session is a `GetSessionToken` session of the user, minted with the tenant's issuer
//! key, so that every console action is an admin call made *with the user's own
//! credentials*: IAM policies decide what each person may do, a deleted user's session ends
//! at its next call, and `aws:MultiFactorAuthPresent` is true after an MFA sign-in. Failed
//! sign-ins count against the source and the user name in the admin API's failure limiter
//! (throttled like failed admin calls) and are audited as `ConsoleLogin` events.

use std::collections::HashMap;

use parking_lot::Mutex;

use super::{audit_event, Admin};
use crate::control_plane::{AdminError, CallEnv};
use crate::directory::IdGenerator;
use crate::error::AwsCode;
use crate::sts::Caller;
use crate::sts::{
    get_session_token, GetSessionTokenParams, IssueEnv, Issued, Issuing, MfaReplayGuard,
};

/// How long a console session's credentials live: AWS's console session.
pub const CONSOLE_SESSION_SECONDS: i32 = 43_200;

/// The audit trail's action for a sign-in, as CloudTrail names it.
pub const CONSOLE_LOGIN: &str = "ConsoleLogin";

/// What a user types to sign in.
pub struct SignInRequest<'a> {
    /// The account id (12 digits) or its alias.
    pub account: &'a str,
    /// The IAM user name.
    pub user_name: &'a str,
    /// The console password.
    pub password: &'a str,
    /// The MFA code, on the second step.
    pub mfa_code: Option<&'a str>,
}

/// A signed-in user.
#[derive(Debug)]
pub struct SignedIn {
    /// The account id.
    pub account_id: String,
    /// The account's alias, if it has one.
    pub alias: Option<String>,
    /// The user's name as stored.
    pub user_name: String,
    /// The user's ARN.
    pub arn: String,
    /// The session's credentials.
    pub credentials: Issued,
    /// The user must choose a new password before anything else.
    pub password_change_required: bool,
    /// Whether the sign-in was with an MFA code.
    pub mfa: bool,
}

impl std::fmt::Debug for SignInRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInRequest")
            .field("account", &self.account)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// The outcome of a sign-in attempt that was not refused.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in.
    Session(Box<SignedIn>),
    /// The password is right and the user has an MFA device: ask for its code.
    MfaRequired,
}

/// The MFA time steps the console accepted, per device: a code signs in once.
#[derive(Debug, Default)]
pub(in crate::control_plane) struct ConsoleMfaSteps(Mutex<HashMap<(String, String), u64>>);

impl MfaReplayGuard for ConsoleMfaSteps {
    fn accept(&self, tenant: &str, serial: &str, step: u64) -> bool {
        let mut steps = self.0.lock();
        // Bounded: a device's entry matters only within its 90 s window, and there are at
        // most as many entries as devices signed in with since the last clearing.
        if steps.len() > 100_000 {
            steps.clear();
        }
        let last = steps
            .entry((tenant.to_owned(), serial.to_owned()))
            .or_insert(0);
        if *last >= step {
            return false;
        }
        *last = step;
        true
    }
}

/// AWS's console answer to a wrong account, user name, password or code: it never says which.
fn incorrect() -> AdminError {
    AdminError::Authentication {
        code: AwsCode::AccessDenied,
        message: "Your authentication information is incorrect. Please try again.".into(),
    }
}

impl Admin {
    /// Signs `request`'s user in at `env`'s time and source.
    pub fn console_sign_in(
        &self,
        request: &SignInRequest<'_>,
        env: CallEnv,
    ) -> Result<SignIn, AdminError> {
        let (cp, auth) = (&*self.control_plane, &*self.auth);
        let account = resolve_account(cp, request.account);
        // The limiter's key: the user as typed, so guesses at one user from one source are
        // throttled whatever account they name.
        let limiter = format!("signin:{}", request.user_name.to_lowercase());
        let record = |outcome: &str, detail: &str| {
            if let Some(account) = account.clone() {
                cp.record_event(audit_event(
                    account,
                    &format!("console:{}", request.user_name),
                    CONSOLE_LOGIN,
                    outcome,
                    false,
                    detail,
                    &env,
                ));
            }
        };
        if auth.sign_in_throttled(&env, &limiter) {
            record("Throttled", "Throttling: too many failed sign-ins");
            return Err(AdminError::Throttling);
        }
        let fail = |detail: &str| {
            auth.count_failed_sign_in(&env, &limiter);
            record("AuthFailure", detail);
            incorrect()
        };
        let Some(account_id) = account.clone() else {
            return Err(fail("no such account"));
        };
        let Some(snapshot) = auth.compiled(cp, &account_id) else {
            return Err(fail("no such account"));
        };
        let tenant = snapshot.tenant();
        let Some(user) = tenant.users.get(&request.user_name.to_lowercase()) else {
            return Err(fail("no such user"));
        };
        let Some(profile) = user.login_profile.as_ref() else {
            return Err(fail("the user has no console password"));
        };
        if !crate::directory::verify_password(&profile.password_hash, request.password) {
            return Err(fail("wrong password"));
        }
        // An expired password the user may not change (`HardExpiry`): only an administrator
        // can let the user in again.
        if let Err(expired) = tenant.check_not_hard_expired(&user.name, env.now.epoch_seconds()) {
            record(
                "AuthFailure",
                "the password expired and only an administrator may reset it",
            );
            return Err(AdminError::Directory(expired));
        }
        let device = tenant
            .mfa_devices
            .values()
            .filter(|d| {
                d.user
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(&user.name))
            })
            .map(|d| d.serial_number.clone())
            .next();
        if device.is_some() && request.mfa_code.is_none() {
            return Ok(SignIn::MfaRequired);
        }
        let Some(entry) = snapshot.user(&user.name) else {
            return Err(fail("no such user"));
        };
        let caller = Caller {
            principal: entry.principal.clone(),
            session: None,
            session_policies: Vec::new().into(),
        };
        let mut ids = IdGenerator::system();
        let mut issue = IssueEnv {
            now: env.now,
            ids: &mut ids,
            mfa: &*self.console_mfa,
            latest_expiry: None,
            issuing: Issuing::IssuerKey,
        };
        let params = GetSessionTokenParams {
            duration_seconds: Some(CONSOLE_SESSION_SECONDS),
            serial_number: device.as_deref(),
            token_code: device.as_ref().and(request.mfa_code),
        };
        let credentials = match get_session_token(&caller, &snapshot, &params, &mut issue) {
            Ok(credentials) => credentials,
            // A wrong, reused or malformed code: the same answer as a wrong password.
            Err(_) if device.is_some() => return Err(fail("wrong MFA code")),
            Err(e) => {
                return Err(AdminError::Internal(format!(
                    "the console session could not be issued: {e}"
                )))
            }
        };
        record("Allowed", if device.is_some() { "MFA" } else { "" });
        Ok(SignIn::Session(Box::new(SignedIn {
            account_id,
            alias: tenant.alias.clone(),
            user_name: user.name.to_string(),
            arn: credentials.arn.clone(),
            credentials,
            password_change_required: tenant
                .password_change_required(profile, env.now.epoch_seconds()),
            mfa: device.is_some(),
        })))
    }
}

/// The account an account id or alias names, if it exists.
fn resolve_account(cp: &crate::control_plane::ControlPlane, typed: &str) -> Option<String> {
    let typed = typed.trim();
    if typed.len() == 12 && typed.bytes().all(|b| b.is_ascii_digit()) {
        return cp.tenant(typed).map(|_| typed.to_owned());
    }
    cp.list_tenants()
        .into_iter()
        .find(|t| {
            t.alias
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(typed))
        })
        .map(|t| t.account_id)
}
