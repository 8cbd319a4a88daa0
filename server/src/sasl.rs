//! SASL on the client port as ZooKeeper serves it: DIGEST-MD5 (RFC 2831) with the users of
//! the JAAS login section `Server` (`user_<name>="<password>"`, ZooKeeper's
//! `DigestLoginModule`), protocol `zookeeper` and server name `zk-sasl-md5`. A client that
//! completes it gets the identity `sasl:<name>`.
//!
//! Everything here is pure: the exchange is a state machine fed the client's tokens, and
//! the nonce comes from the caller.

use std::collections::BTreeMap;

use zk_jute::sasl::{Credentials, DIGEST_URI, Exchange, SERVER_NAME};

/// The DIGEST-MD5 users of a JAAS login section: every `user_<name>` option of its
/// modules, as ZooKeeper's `SaslServerCallbackHandler` reads them.
pub fn digest_users(modules: &[zk_jute::sasl::LoginModule]) -> BTreeMap<String, String> {
    modules
        .iter()
        .flat_map(|(_, options)| options.iter())
        .filter_map(|(key, value)| {
            key.strip_prefix("user_")
                .map(|user| (user.to_owned(), value.clone()))
        })
        .collect()
}

/// Why an exchange failed (what ZooKeeper logs; the client gets `AuthFailed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DIGEST-MD5: {0}")]
pub struct SaslError(pub String);

fn fail<T>(why: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(why.into()))
}

/// What a step of the exchange gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge and wait for the client's next token.
    Challenge(Vec<u8>),
    /// Authenticated as this user; send this last token (`rspauth`).
    Done {
        /// The authorization id: the user name.
        user: String,
        /// The server's proof, for the client.
        token: Vec<u8>,
    },
}

/// One connection's DIGEST-MD5 exchange, server side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestMd5 {
    /// Nothing exchanged yet.
    Start,
    /// The challenge went out with this nonce.
    Challenged {
        /// The server's nonce.
        nonce: String,
    },
    /// Authenticated (or failed): no more steps.
    Over,
}

impl DigestMd5 {
    /// Feeds the client's next `token`. `nonce` is fresh material for the first challenge;
    /// `password` looks a user's password up.
    pub fn step(
        &mut self,
        token: &[u8],
        nonce: &str,
        password: impl Fn(&str) -> Option<String>,
    ) -> Result<Step, SaslError> {
        match std::mem::replace(self, DigestMd5::Over) {
            DigestMd5::Start => {
                if !token.is_empty() {
                    return fail("an initial response is not allowed");
                }
                let challenge = format!(
                    "realm=\"{SERVER_NAME}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,\
                     algorithm=md5-sess"
                );
                *self = DigestMd5::Challenged {
                    nonce: nonce.to_owned(),
                };
                Ok(Step::Challenge(challenge.into_bytes()))
            }
            DigestMd5::Challenged { nonce } => respond(token, &nonce, password),
            DigestMd5::Over => fail("the exchange is over"),
        }
    }
}

/// Checks the client's digest-response against the user's password and makes `rspauth`.
fn respond(
    token: &[u8],
    nonce: &str,
    password: impl Fn(&str) -> Option<String>,
) -> Result<Step, SaslError> {
    let text = std::str::from_utf8(token).or_else(|_| fail("the response is not UTF-8"))?;
    let fields = zk_jute::sasl::directives(text).map_err(|e| SaslError(e.0))?;
    let get = |key: &str| fields.get(key).map(String::as_str);
    let Some(user) = get("username") else {
        return fail("the response has no username");
    };
    if get("nonce") != Some(nonce) {
        return fail("the response's nonce is not the server's");
    }
    let Some(cnonce) = get("cnonce") else {
        return fail("the response has no cnonce");
    };
    let nc = get("nc").unwrap_or("");
    if nc != "00000001" {
        return fail(format!("nonce count {nc:?} is not 00000001"));
    }
    let qop = get("qop").unwrap_or("auth");
    if qop != "auth" {
        return fail(format!("qop {qop:?} is not offered"));
    }
    let uri = get("digest-uri").unwrap_or("");
    if !uri.eq_ignore_ascii_case(DIGEST_URI) {
        return fail(format!("digest-uri {uri:?} is not {DIGEST_URI}"));
    }
    let Some(response) = get("response") else {
        return fail("the response has no response value");
    };
    let realm = get("realm").unwrap_or("");
    let authzid = get("authzid");
    let utf8 = get("charset").is_some_and(|c| c.eq_ignore_ascii_case("utf-8"));
    let Some(secret) = password(user) else {
        return fail(format!(
            "user {user:?} is not one of the Server section's users"
        ));
    };
    let creds = Credentials {
        user,
        realm,
        password: &secret,
        utf8,
    };
    let exchange = Exchange {
        nonce,
        cnonce,
        nc,
        authzid,
        uri,
    };
    let expected = zk_jute::sasl::response_value(&creds, &exchange);
    if !expected.eq_ignore_ascii_case(response) {
        return fail(format!("wrong password for user {user:?}"));
    }
    let rspauth = zk_jute::sasl::rspauth_value(&creds, &exchange);
    Ok(Step::Done {
        user: user.to_owned(),
        token: format!("rspauth={rspauth}").into_bytes(),
    })
}

/// A client's digest-response to a challenge with `nonce`, for tests of the exchange's
/// wiring (the digest itself is checked against RFC 2831's example in `zk-jute`, and real
/// clients run against the server in `cargo xtask compat-clients`).
#[cfg(test)]
pub(crate) fn client_response(user: &str, password: &str, nonce: &str, uri: &str) -> Vec<u8> {
    let creds = Credentials {
        user,
        realm: SERVER_NAME,
        password,
        utf8: true,
    };
    let exchange = Exchange {
        nonce,
        cnonce: "c1i2e3n4t5",
        nc: "00000001",
        authzid: None,
        uri,
    };
    zk_jute::sasl::client_response(&creds, &exchange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(user: &str) -> Option<String> {
        (user == "bob").then(|| "b0b's secret".to_owned())
    }

    #[test]
    fn an_exchange_authenticates_the_user_or_fails() {
        let uri = "zookeeper/zk-sasl-md5";
        let mut sasl = DigestMd5::Start;
        let Step::Challenge(challenge) = sasl.step(b"", "n0nce", users).unwrap() else {
            panic!("no challenge");
        };
        let challenge = String::from_utf8(challenge).unwrap();
        assert!(challenge.contains("nonce=\"n0nce\""), "{challenge}");
        assert!(challenge.contains("qop=\"auth\""), "{challenge}");
        let mut good = sasl.clone();
        let done = good
            .step(
                &client_response("bob", "b0b's secret", "n0nce", uri),
                "",
                users,
            )
            .unwrap();
        let Step::Done { user, token } = done else {
            panic!("not done");
        };
        assert_eq!(user, "bob");
        assert!(token.starts_with(b"rspauth="));
        assert!(good.step(b"", "", users).is_err(), "no step after the end");
        for (response, why) in [
            (
                client_response("bob", "guess", "n0nce", uri),
                "wrong password",
            ),
            (
                client_response("eve", "b0b's secret", "n0nce", uri),
                "not one of",
            ),
            (
                client_response("bob", "b0b's secret", "other", uri),
                "nonce",
            ),
            (
                client_response("bob", "b0b's secret", "n0nce", "ldap/zk-sasl-md5"),
                "digest-uri",
            ),
            (b"username=\"bob".to_vec(), "not closed"),
        ] {
            let error = sasl.clone().step(&response, "", users).unwrap_err();
            assert!(error.0.contains(why), "{why}: {error}");
        }
        assert!(DigestMd5::Start.step(b"x", "n", users).is_err());
    }
}
