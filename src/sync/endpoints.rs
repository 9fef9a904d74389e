//! The control-plane replicas a sidecar may stream from (issue #16, item 3).
//!
//! `--control-plane` names one or more URLs, comma-separated. Each URL's host name is resolved
//! again before every connection attempt, and each address it resolves to is one endpoint: a
//! headless Service's new pods are found without a restart, and a replica that went away stops
//! being tried once DNS forgets it. TLS checks the URL's host name (or `--control-plane-name`)
//! whichever address is dialled, so a certificate issued for the Service name fits every pod.
//!
//! The client walks the endpoints in order from a random start (so a fleet spreads over the
//! replicas), moves to the next on a failed connection or a dropped stream, and backs off only
//! once a whole round has failed: one replica down costs one failed attempt, not a backoff.

use std::net::{IpAddr, SocketAddr};

use tonic::codegen::http::Uri;

/// Why `--control-plane` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No URL at all.
    #[error("no control plane URL given: expected one or more URLs separated by commas")]
    Empty,
    /// One URL that cannot be dialled.
    #[error("control plane URL `{url}` is not valid: {reason}")]
    Invalid {
        /// The URL as given, cut to a bounded length.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// One `--control-plane` URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlaneUrl {
    /// The URL as given (trimmed): TLS takes its host name from it.
    pub url: String,
    scheme: &'static str,
    host: String,
    port: u16,
}

/// The URLs of `--control-plane`, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointList {
    urls: Vec<ControlPlaneUrl>,
}

/// One address to dial: a URL's host resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL it came from (the TLS server name's source).
    pub url: String,
    /// The address dialled.
    pub addr: SocketAddr,
}

// === impl EndpointList ===

impl EndpointList {
    /// Parses URLs separated by commas: each `http://` or `https://`, with a host, an
    /// optional port (default 80 or 443), and no path, query or credentials.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let urls = text
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(ControlPlaneUrl::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if urls.is_empty() {
            return Err(EndpointError::Empty);
        }
        Ok(Self { urls })
    }

    /// The URLs, in the order given.
    pub fn urls(&self) -> &[ControlPlaneUrl] {
        &self.urls
    }

    /// Resolves every URL: the endpoints in URL order (each URL's addresses sorted, so the
    /// rotation is stable between rounds), and the URLs that did not resolve, with why.
    pub async fn resolve(&self) -> (Vec<Endpoint>, Vec<(String, std::io::Error)>) {
        let mut endpoints = Vec::new();
        let mut failed = Vec::new();
        for url in &self.urls {
            match url.resolve().await {
                Ok(addrs) => endpoints.extend(addrs.into_iter().map(|addr| Endpoint {
                    url: url.url.clone(),
                    addr,
                })),
                Err(error) => failed.push((url.url.clone(), error)),
            }
        }
        (endpoints, failed)
    }
}

impl std::fmt::Display for EndpointList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, url) in self.urls.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&url.url)?;
        }
        Ok(())
    }
}

// === impl ControlPlaneUrl ===

impl ControlPlaneUrl {
    fn parse(text: &str) -> Result<Self, EndpointError> {
        let invalid = |reason| EndpointError::Invalid {
            url: crate::error::echo(text).to_string(),
            reason,
        };
        let uri: Uri = text
            .parse()
            .map_err(|_| invalid("expected http://HOST[:PORT] or https://HOST[:PORT]"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => "http",
            Some("https") => "https",
            Some(_) => return Err(invalid("the scheme must be http or https")),
            None => return Err(invalid("the scheme is missing (http:// or https://)")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("the host is missing"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials do not belong in the URL"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("a path or query is not allowed"));
        }
        // What follows the host, if anything, is `:PORT`.
        let port_text = authority
            .as_str()
            .get(host.len()..)
            .and_then(|rest| rest.strip_prefix(':'));
        let port = match port_text {
            None | Some("") if scheme == "https" => 443,
            None | Some("") => 80,
            Some(text) => match text.parse::<u16>() {
                Ok(0) => return Err(invalid("port 0 cannot be dialled")),
                Ok(port) => port,
                Err(_) => return Err(invalid("the port is not a number up to 65535")),
            },
        };
        Ok(Self {
            url: text.to_owned(),
            scheme,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        })
    }

    /// The addresses of this URL now: an address literal as is, a name through the system
    /// resolver, without duplicates, sorted.
    async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        addrs.sort();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name resolves to no address",
            ));
        }
        Ok(addrs)
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// The URI dialled: the URL's scheme with the resolved address.
    pub fn dial_uri(&self) -> String {
        let scheme = if self.url.starts_with("https") {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }
}

impl std::fmt::Display for Endpoint {
    /// `URL (ADDRESS)`, or the URL alone when it is the address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.url.trim_end_matches('/') == self.dial_uri() {
            f.write_str(&self.url)
        } else {
            write!(f, "{} ({})", self.url, self.addr)
        }
    }
}

/// Which endpoint to try next: a cursor into the endpoints of the current round, from a
/// random start, advanced after every attempt; and how many attempts of this round failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    cursor: Option<usize>,
    start_draw: u64,
    failed: usize,
}

// === impl Rotation ===

impl Rotation {
    /// A rotation whose first pick is decided by `draw` (uniformly random in production).
    pub fn new(draw: u64) -> Self {
        Self {
            cursor: None,
            start_draw: draw,
            failed: 0,
        }
    }

    /// The index to try among `len` endpoints (`len` may change between rounds, as DNS
    /// answers do); `None` for none.
    pub fn pick(&mut self, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let draw = self.start_draw;
        let cursor = *self.cursor.get_or_insert_with(|| {
            // The remainder is below `len`, which is a usize.
            usize::try_from(draw % len as u64).unwrap_or(0)
        });
        Some(cursor % len)
    }

    /// After an attempt on `index` (of `len`): the next attempt goes to the next endpoint.
    /// True when this failure completes a round of failures (every endpoint tried once):
    /// the caller then backs off.
    pub fn failed(&mut self, index: usize, len: usize) -> bool {
        self.cursor = Some(index.wrapping_add(1));
        self.failed += 1;
        if self.failed >= len.max(1) {
            self.failed = 0;
            return true;
        }
        false
    }

    /// A stream delivered something on `index` and then ended: the next attempt goes to the
    /// next endpoint, and a new round of failures starts.
    pub fn delivered(&mut self, index: usize) {
        self.cursor = Some(index.wrapping_add(1));
        self.failed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_urls_parse_with_default_ports() {
        let list = EndpointList::parse(" http://cp-0:7070 ,https://cp.iamlet.svc, http://[::1]:9/")
            .unwrap();
        let got: Vec<(&str, &str, u16)> = list
            .urls()
            .iter()
            .map(|u| (u.scheme, u.host.as_str(), u.port))
            .collect();
        assert_eq!(
            got,
            [
                ("http", "cp-0", 7070),
                ("https", "cp.iamlet.svc", 443),
                ("http", "::1", 9)
            ]
        );
        assert_eq!(
            list.to_string(),
            "http://cp-0:7070,https://cp.iamlet.svc,http://[::1]:9/"
        );
        assert_eq!(EndpointList::parse("http://a").unwrap().urls()[0].port, 80);
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        let reason = |text: &str| match EndpointList::parse(text) {
            Err(EndpointError::Invalid { reason, .. }) => reason,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(EndpointList::parse(""), Err(EndpointError::Empty));
        assert_eq!(EndpointList::parse(" , ,"), Err(EndpointError::Empty));
        assert_eq!(
            reason("cp:7070"),
            "the scheme is missing (http:// or https://)"
        );
        assert_eq!(
            reason("127.0.0.1:7070"),
            "the scheme is missing (http:// or https://)"
        );
        assert_eq!(
            reason("http://a b"),
            "expected http://HOST[:PORT] or https://HOST[:PORT]"
        );
        assert_eq!(reason("ftp://cp:21"), "the scheme must be http or https");
        assert_eq!(
            reason("http://cp:7070/sync"),
            "a path or query is not allowed"
        );
        assert_eq!(
            reason("http://cp:7070?a=b"),
            "a path or query is not allowed"
        );
        assert_eq!(reason("http://cp:0"), "port 0 cannot be dialled");
        assert_eq!(
            reason("http://u:p@cp:7070"),
            "credentials do not belong in the URL"
        );
        assert_eq!(
            reason("http://cp:99999"),
            "the port is not a number up to 65535"
        );
        // One bad URL refuses the list, and the message names it.
        let error = EndpointList::parse("http://good:1,bad one").unwrap_err();
        assert!(error.to_string().contains("`bad one`"), "{error}");
        // Echoed input is bounded.
        let long = format!("http://{}/x", "a".repeat(5_000));
        assert!(EndpointList::parse(&long).unwrap_err().to_string().len() < 1_000);
    }

    #[tokio::test]
    async fn literals_resolve_to_themselves_and_names_to_every_address() {
        let list = EndpointList::parse("http://127.0.0.1:7070,https://[::1]:7443").unwrap();
        let (endpoints, failed) = list.resolve().await;
        assert!(failed.is_empty());
        let dial: Vec<String> = endpoints.iter().map(Endpoint::dial_uri).collect();
        assert_eq!(dial, ["http://127.0.0.1:7070", "https://[::1]:7443"]);
        assert_eq!(endpoints[0].to_string(), "http://127.0.0.1:7070");
        // `localhost` resolves through the system resolver; each address is an endpoint that
        // keeps the URL (the TLS server name) it came from.
        let (named, _) = EndpointList::parse("https://localhost:7443")
            .unwrap()
            .resolve()
            .await;
        assert!(!named.is_empty());
        for e in &named {
            assert_eq!(e.url, "https://localhost:7443");
            assert!(e.addr.ip().is_loopback() && e.addr.port() == 7443);
            assert!(e.to_string().starts_with("https://localhost:7443 ("), "{e}");
        }
        // A name that does not resolve is reported, not dialled.
        let (none, failed) = EndpointList::parse("http://no-such-host.invalid:1")
            .unwrap()
            .resolve()
            .await;
        assert!(none.is_empty());
        assert_eq!(failed.len(), 1);
    }

    #[test]
    fn rotation_moves_on_and_backs_off_after_a_full_round() {
        let mut r = Rotation::new(1);
        assert_eq!(r.pick(3), Some(1));
        assert!(!r.failed(1, 3));
        assert_eq!(r.pick(3), Some(2));
        assert!(!r.failed(2, 3));
        assert_eq!(r.pick(3), Some(0));
        // The third failure in a row completes the round.
        assert!(r.failed(0, 3));
        assert_eq!(r.pick(3), Some(1));
        // A stream that delivered moves on too, and starts a new round.
        r.delivered(1);
        assert_eq!(r.pick(3), Some(2));
        assert!(!r.failed(2, 3));
        // The list shrank (DNS forgot a replica): the cursor wraps into it.
        assert_eq!(r.pick(2), Some(1));
        assert_eq!(Rotation::new(7).pick(0), None);
        // One endpoint: every failure is a full round.
        let mut one = Rotation::new(5);
        assert_eq!(one.pick(1), Some(0));
        assert!(one.failed(0, 1));
    }

    #[test]
    fn the_start_is_random_so_a_fleet_spreads() {
        let mut counts = [0usize; 3];
        for _ in 0..600 {
            let mut bytes = [0u8; 8];
            crate::directory::IdGenerator::system().fill(&mut bytes);
            let i = Rotation::new(u64::from_le_bytes(bytes)).pick(3).unwrap();
            counts[i] += 1;
        }
        // 200 expected each; 120 is more than 7 standard deviations away.
        assert!(counts.iter().all(|c| *c > 120), "{counts:?}");
    }
}
