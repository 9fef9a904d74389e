//! Console sessions, kept in this process: a random 256-bit id in an `HttpOnly`,
//! `SameSite=Strict` cookie names one; the session holds the user's temporary credentials, a
//! CSRF token of its own, the forms already submitted (a double submission is refused), and
//! a message for the next page. A session ends at sign-out, after [`IDLE_SECONDS`] without a
//! request, or [`ABSOLUTE_SECONDS`] after sign-in, whichever comes first.
//!
//! Sessions live in one replica's memory: behind several control-plane replicas the console
//! needs session affinity (deploy/README.md says how); a replica that restarts signs its
//! users out, and nothing else is lost.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use ring::rand::SecureRandom as _;

use crate::control_plane::SignedIn;
use crate::directory::Secret;

/// A session ends after this long without a request.
pub(super) const IDLE_SECONDS: i64 = 30 * 60;
/// A session ends this long after sign-in, whatever happens (its credentials' lifetime).
pub(super) const ABSOLUTE_SECONDS: i64 = crate::control_plane::CONSOLE_SESSION_SECONDS as i64;
/// A sign-in waiting for its MFA code is forgotten after this long.
const PENDING_SECONDS: i64 = 5 * 60;
/// At most this many sessions (and as many pending sign-ins): the oldest go first.
const MAX_SESSIONS: usize = 10_000;
/// The forms a session remembers as submitted.
const REMEMBERED_FORMS: usize = 256;

/// A random token: 32 bytes, base64url.
pub(super) fn token() -> String {
    let mut bytes = [0_u8; 32];
    // The system's generator does not fail on a working OS; were it to, a zero token is
    // refused below rather than used.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return String::new();
    }
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}

/// One signed-in user.
pub(super) struct Session {
    /// The session id (the cookie's value).
    pub(super) id: String,
    /// The token every state-changing form carries.
    pub(super) csrf: String,
    pub(super) account_id: String,
    pub(super) alias: Option<String>,
    pub(super) user_name: String,
    pub(super) arn: String,
    pub(super) access_key_id: String,
    pub(super) secret: Secret,
    pub(super) session_token: String,
    pub(super) mfa: bool,
    signed_in_at: i64,
    state: Mutex<SessionState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// What changes during a session.
#[derive(Default)]
struct SessionState {
    last_seen: i64,
    password_change_required: bool,
    /// A message for the next page (`(is_error, text)`).
    flash: Option<(bool, String)>,
    /// Forms already submitted, by their one-time token.
    submitted: VecDeque<String>,
    /// A file to download once (name, content): the new user's `.csv` of credentials.
    download: Option<(String, Secret)>,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (compared in constant time; an empty token
    /// never matches).
    pub(super) fn csrf_matches(&self, sent: &str) -> bool {
        !self.csrf.is_empty()
            && crate::jose::constant_time_eq(sent.as_bytes(), self.csrf.as_bytes())
    }

    pub(super) fn password_change_required(&self) -> bool {
        self.state.lock().password_change_required
    }

    pub(super) fn password_changed(&self) {
        self.state.lock().password_change_required = false;
    }

    /// Leaves a message for the next page.
    pub(super) fn flash(&self, error: bool, text: impl Into<String>) {
        self.state.lock().flash = Some((error, text.into()));
    }

    /// Takes the message left for this page.
    pub(super) fn take_flash(&self) -> Option<(bool, String)> {
        self.state.lock().flash.take()
    }

    /// Records the form whose one-time token is `once` as submitted; false if it was already
    /// (a double submission) or carries none.
    pub(super) fn first_submission(&self, once: &str) -> bool {
        if once.len() < 16 || once.len() > 64 {
            return false;
        }
        let mut state = self.state.lock();
        if state.submitted.iter().any(|s| s == once) {
            return false;
        }
        if state.submitted.len() >= REMEMBERED_FORMS {
            state.submitted.pop_front();
        }
        state.submitted.push_back(once.to_owned());
        true
    }

    /// Keeps a file for one download.
    pub(super) fn offer_download(&self, name: String, content: String) {
        self.state.lock().download = Some((name, Secret::new(content)));
    }

    /// The file kept for download, once.
    pub(super) fn take_download(&self) -> Option<(String, Secret)> {
        self.state.lock().download.take()
    }
}

/// A sign-in whose password was right, waiting for the MFA code.
pub(super) struct Pending {
    pub(super) account: String,
    pub(super) user_name: String,
    pub(super) password: Secret,
    at: i64,
}

/// Every session of this process.
#[derive(Default)]
pub(super) struct Sessions {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Sessions {
    /// A new session for `signed_in` at `now`.
    pub(super) fn start(&self, signed_in: SignedIn, now: i64) -> Arc<Session> {
        let session = Arc::new(Session {
            id: token(),
            csrf: token(),
            account_id: signed_in.account_id,
            alias: signed_in.alias,
            user_name: signed_in.user_name,
            arn: signed_in.arn,
            access_key_id: signed_in.credentials.access_key_id,
            secret: Secret::new(signed_in.credentials.secret_access_key),
            session_token: signed_in.credentials.session_token,
            mfa: signed_in.mfa,
            signed_in_at: now,
            state: Mutex::new(SessionState {
                last_seen: now,
                password_change_required: signed_in.password_change_required,
                ..SessionState::default()
            }),
        });
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, s| s.alive(now));
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions
                .values()
                .min_by_key(|s| s.signed_in_at)
                .map(|s| s.id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(session.id.clone(), Arc::clone(&session));
        session
    }

    /// The live session `id` names, touched at `now`; an expired one is ended.
    pub(super) fn find(&self, id: &str, now: i64) -> Option<Arc<Session>> {
        if id.is_empty() {
            return None;
        }
        let mut sessions = self.sessions.lock();
        let session = sessions.get(id)?;
        if !session.alive(now) {
            sessions.remove(id);
            return None;
        }
        session.state.lock().last_seen = now;
        Some(Arc::clone(session))
    }

    /// Ends session `id`.
    pub(super) fn end(&self, id: &str) {
        self.sessions.lock().remove(id);
    }

    /// Ends every session of `user_name` in `account_id` but `keep` (after a password change).
    pub(super) fn end_others(&self, account_id: &str, user_name: &str, keep: &str) {
        self.sessions.lock().retain(|id, s| {
            id == keep || s.account_id != account_id || !s.user_name.eq_ignore_ascii_case(user_name)
        });
    }

    /// Remembers a sign-in waiting for its MFA code; returns its id.
    pub(super) fn wait_for_mfa(
        &self,
        account: String,
        user_name: String,
        password: Secret,
        now: i64,
    ) -> String {
        let id = token();
        let mut pending = self.pending.lock();
        pending.retain(|_, p| now - p.at < PENDING_SECONDS);
        if pending.len() >= MAX_SESSIONS {
            pending.clear();
        }
        pending.insert(
            id.clone(),
            Pending {
                account,
                user_name,
                password,
                at: now,
            },
        );
        id
    }

    /// The sign-in waiting under `id`, taken (a code is tried once per password step).
    pub(super) fn take_pending(&self, id: &str, now: i64) -> Option<Pending> {
        let pending = self.pending.lock().remove(id)?;
        (now - pending.at < PENDING_SECONDS).then_some(pending)
    }

    /// How many sessions are live (for tests and metrics).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.sessions.lock().len()
    }
}

impl Session {
    fn alive(&self, now: i64) -> bool {
        let last_seen = self.state.lock().last_seen;
        now - last_seen < IDLE_SECONDS && now - self.signed_in_at < ABSOLUTE_SECONDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Timestamp;
    use crate::sts::Issued;

    fn signed_in() -> SignedIn {
        SignedIn {
            account_id: "111122223333".into(),
            alias: None,
            user_name: "alice".into(),
            arn: "arn:aws:iam::111122223333:user/alice".into(),
            credentials: Issued {
                access_key_id: "ASIAEXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: "token".into(),
                expiration: Timestamp::from_epoch_seconds(0),
                assumed_role_id: String::new(),
                arn: "arn:aws:iam::111122223333:user/alice".into(),
                packed_policy_size: 0,
                source_identity: None,
                tenant: "111122223333".into(),
            },
            password_change_required: false,
            mfa: false,
        }
    }

    #[test]
    fn sessions_end_when_idle_or_too_old_and_at_sign_out() {
        let sessions = Sessions::default();
        let s = sessions.start(signed_in(), 1_000);
        assert_ne!(s.id, s.csrf);
        assert_eq!(s.id.len(), 43);
        assert!(sessions.find(&s.id, 1_000 + IDLE_SECONDS - 1).is_some());
        // Touched: idle counts from the last request.
        assert!(sessions.find(&s.id, 1_000 + 2 * IDLE_SECONDS - 2).is_some());
        assert!(sessions.find(&s.id, 1_000 + 3 * IDLE_SECONDS).is_none());
        assert!(
            sessions.find(&s.id, 1_000).is_none(),
            "an expired session is gone"
        );

        let s = sessions.start(signed_in(), 0);
        let mut now = 0;
        while now < ABSOLUTE_SECONDS - IDLE_SECONDS {
            now += IDLE_SECONDS - 1;
            assert!(sessions.find(&s.id, now).is_some());
        }
        assert!(
            sessions.find(&s.id, ABSOLUTE_SECONDS).is_none(),
            "absolute timeout"
        );

        let s = sessions.start(signed_in(), 0);
        sessions.end(&s.id);
        assert!(sessions.find(&s.id, 1).is_none());
        assert!(sessions.find("", 1).is_none());
        assert_eq!(sessions.len(), 0);
    }

    #[test]
    fn a_form_is_submitted_once() {
        let sessions = Sessions::default();
        let s = sessions.start(signed_in(), 0);
        let once = token();
        assert!(s.first_submission(&once));
        assert!(!s.first_submission(&once), "a double submission is refused");
        assert!(!s.first_submission(""), "a form without a token is refused");
        assert!(s.first_submission(&token()));
    }

    #[test]
    fn a_pending_sign_in_is_taken_once_and_expires() {
        let sessions = Sessions::default();
        let id = sessions.wait_for_mfa("a".into(), "u".into(), Secret::new("p"), 0);
        assert!(sessions.take_pending(&id, 1).is_some());
        assert!(sessions.take_pending(&id, 1).is_none());
        let id = sessions.wait_for_mfa("a".into(), "u".into(), Secret::new("p"), 0);
        assert!(sessions.take_pending(&id, PENDING_SECONDS).is_none());
    }
}
