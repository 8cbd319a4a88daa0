//! SASL DIGEST-MD5 (RFC 2831) as ZooKeeper's clients and servers carry it in the tokens
//! of `SetSASLRequest` and `SetSASLResponse` (opcode `sasl`): protocol `zookeeper`,
//! server name and realm `zk-sasl-md5`, quality of protection `auth`, `md5-sess`. The
//! digests and the directive syntax both sides need; the exchanges themselves live with
//! the server and the client.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use md5::{Digest, Md5};

/// The realm and server name ZooKeeper's DIGEST-MD5 uses.
pub const SERVER_NAME: &str = "zk-sasl-md5";
/// The SASL protocol (service) name.
pub const PROTOCOL: &str = "zookeeper";
/// The `digest-uri` of a ZooKeeper exchange.
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// The strings a digest is made of.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The user name.
    pub user: &'a str,
    /// The realm (the server's, as the client answered it).
    pub realm: &'a str,
    /// The password.
    pub password: &'a str,
    /// `charset=utf-8` was agreed: the three above in UTF-8 (else ISO 8859-1 where they
    /// fit, as RFC 2831 says).
    pub utf8: bool,
}

/// The per-exchange values a digest covers.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The server's nonce.
    pub nonce: &'a str,
    /// The client's nonce.
    pub cnonce: &'a str,
    /// The nonce count (`00000001`).
    pub nc: &'a str,
    /// The authorization id, when the client sent one.
    pub authzid: Option<&'a str>,
    /// The `digest-uri`.
    pub uri: &'a str,
}

fn latin1_or_utf8(text: &str, utf8: bool) -> Vec<u8> {
    if !utf8 && text.chars().all(|c| (c as u32) < 256) {
        text.chars().map(|c| c as u8).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn digest(creds: &Credentials<'_>, exchange: &Exchange<'_>, a2: &str) -> String {
    let mut inner = Md5::new();
    inner.update(latin1_or_utf8(creds.user, creds.utf8));
    inner.update(b":");
    inner.update(latin1_or_utf8(creds.realm, creds.utf8));
    inner.update(b":");
    inner.update(latin1_or_utf8(creds.password, creds.utf8));
    let mut a1 = inner.finalize().to_vec();
    a1.extend_from_slice(format!(":{}:{}", exchange.nonce, exchange.cnonce).as_bytes());
    if let Some(authzid) = exchange.authzid {
        a1.push(b':');
        a1.extend_from_slice(authzid.as_bytes());
    }
    let ha1 = hex(&Md5::digest(&a1));
    let ha2 = hex(&Md5::digest(a2.as_bytes()));
    let (nonce, nc, cnonce) = (exchange.nonce, exchange.nc, exchange.cnonce);
    hex(&Md5::digest(
        format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes(),
    ))
}

/// The client's `response` value: proof that it knows the password.
pub fn response_value(creds: &Credentials<'_>, exchange: &Exchange<'_>) -> String {
    digest(creds, exchange, &format!("AUTHENTICATE:{}", exchange.uri))
}

/// The server's `rspauth` value: proof that it knows the password too.
pub fn rspauth_value(creds: &Credentials<'_>, exchange: &Exchange<'_>) -> String {
    digest(creds, exchange, &format!(":{}", exchange.uri))
}

/// A client's whole digest-response token to a challenge (`charset=utf-8`, qop `auth`).
pub fn client_response(creds: &Credentials<'_>, exchange: &Exchange<'_>) -> Vec<u8> {
    let response = response_value(creds, exchange);
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut text = format!(
        "charset=utf-8,username=\"{}\",realm=\"{}\",nonce=\"{}\",nc={},cnonce=\"{}\",\
         digest-uri=\"{}\",maxbuf=65536,response={response},qop=auth",
        quote(creds.user),
        quote(creds.realm),
        quote(exchange.nonce),
        exchange.nc,
        quote(exchange.cnonce),
        quote(exchange.uri),
    );
    if let Some(authzid) = exchange.authzid {
        let _ = write!(text, ",authzid=\"{}\"", quote(authzid));
    }
    text.into_bytes()
}

/// Why a JAAS file does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JaasError {
    /// The file does not parse.
    #[error("JAAS configuration: {0}")]
    Syntax(String),
}

/// A JAAS login module entry: its class and its options.
pub type LoginModule = (String, BTreeMap<String, String>);

/// The options of every login module in section `section` of a JAAS configuration, in
/// order. `None` when there is no such section.
pub fn jaas_section(text: &str, section: &str) -> Result<Option<Vec<LoginModule>>, JaasError> {
    let tokens = jaas_tokens(text)?;
    let mut at = 0;
    let bad = |what: &str| JaasError::Syntax(what.to_owned());
    while let Some(name) = tokens.get(at) {
        if tokens.get(at + 1).map(String::as_str) != Some("{") {
            return Err(bad(&format!("expected '{{' after {name}")));
        }
        at += 2;
        let mut modules = Vec::new();
        loop {
            match tokens.get(at).map(String::as_str) {
                None => return Err(bad("a section is not closed")),
                Some("}") => {
                    at += 1;
                    if tokens.get(at).map(String::as_str) == Some(";") {
                        at += 1;
                    }
                    break;
                }
                Some(class) => {
                    let class = class.to_owned();
                    // The control flag: required, requisite, sufficient, optional.
                    at += 2;
                    let mut options = BTreeMap::new();
                    loop {
                        match tokens.get(at).map(String::as_str) {
                            Some(";") => {
                                at += 1;
                                break;
                            }
                            Some(key) => {
                                let key = key.to_owned();
                                if tokens.get(at + 1).map(String::as_str) != Some("=") {
                                    return Err(bad(&format!("expected '=' after {key}")));
                                }
                                let value = tokens
                                    .get(at + 2)
                                    .ok_or_else(|| bad("an option has no value"))?;
                                options.insert(key, value.clone());
                                at += 3;
                            }
                            None => return Err(bad("a login module entry is not closed")),
                        }
                    }
                    modules.push((class, options));
                }
            }
        }
        if name == section {
            return Ok(Some(modules));
        }
    }
    Ok(None)
}

/// A JAAS file's tokens: names, quoted strings (unquoted), `{`, `}`, `;`, `=`; comments
/// (`//`, `/* */`, `#`) dropped.
fn jaas_tokens(text: &str) -> Result<Vec<String>, JaasError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '{' | '}' | ';' | '=' => tokens.push(c.to_string()),
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err(JaasError::Syntax("a comment is not closed".into())),
                    }
                }
            }
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => value.extend(chars.next()),
                        Some(c) => value.push(c),
                        None => {
                            return Err(JaasError::Syntax("a quoted value is not closed".into()));
                        }
                    }
                }
                tokens.push(value);
            }
            c => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    Ok(tokens)
}

/// Why a token's directives do not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DIGEST-MD5 directives: {0}")]
pub struct DirectiveError(pub String);

/// A challenge's or response's `key=value` directives (keys in lower case, values
/// unquoted); a key given twice is an error. A `qop` offer list keeps its commas.
pub fn directives(text: &str) -> Result<BTreeMap<String, String>, DirectiveError> {
    let fail = |why: String| Err(DirectiveError(why));
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return fail(format!("directive {key:?} has no value"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return fail("a quoted value is not closed".into()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let key = key.trim().to_ascii_lowercase();
        if out.insert(key.clone(), value.trim().to_owned()).is_some() {
            return fail(format!("directive {key:?} given twice"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2831_example_digests() {
        // RFC 2831 section 4: chris / secret at elwood.innosoft.com, imap.
        let creds = Credentials {
            user: "chris",
            realm: "elwood.innosoft.com",
            password: "secret",
            utf8: false,
        };
        let exchange = Exchange {
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            nc: "00000001",
            authzid: None,
            uri: "imap/elwood.innosoft.com",
        };
        assert_eq!(
            response_value(&creds, &exchange),
            "d388dad90d4bbd760a152321f2143af7"
        );
        assert_eq!(
            rspauth_value(&creds, &exchange),
            "ea40f60335c427b5527b84dbabcdfffd"
        );
    }

    #[test]
    fn directives_unquote_and_refuse_repeats() {
        let got =
            directives(r#"realm="zk-sasl-md5",nonce="a\"b",qop="auth",charset=utf-8"#).unwrap();
        assert_eq!(got.get("nonce").map(String::as_str), Some("a\"b"));
        assert_eq!(got.get("charset").map(String::as_str), Some("utf-8"));
        assert!(directives("a=1,a=2").is_err());
        assert!(directives("a=\"open").is_err());
        assert!(directives("novalue").is_err());
    }

    #[test]
    fn a_client_response_parses_back() {
        let creds = Credentials {
            user: "bob",
            realm: SERVER_NAME,
            password: "pw",
            utf8: true,
        };
        let exchange = Exchange {
            nonce: "n",
            cnonce: "c",
            nc: "00000001",
            authzid: None,
            uri: DIGEST_URI,
        };
        let text = String::from_utf8(client_response(&creds, &exchange)).unwrap();
        let fields = directives(&text).unwrap();
        assert_eq!(fields.get("username").map(String::as_str), Some("bob"));
        assert_eq!(
            fields.get("response").cloned(),
            Some(response_value(&creds, &exchange))
        );
    }

    #[test]
    fn jaas_sections_and_their_users() {
        let text = r#"
            /* ZooKeeper's example */
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"
                user_bob = "bob\"s secret"; // a comment
            };
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                username="bob" password="bobsecret";
            };
        "#;
        let server = jaas_section(text, "Server").unwrap().unwrap();
        let (class, options) = &server[0];
        assert_eq!(class, "org.apache.zookeeper.server.auth.DigestLoginModule");
        assert_eq!(
            options.get("user_super").map(String::as_str),
            Some("adminsecret")
        );
        assert_eq!(
            options.get("user_bob").map(String::as_str),
            Some("bob\"s secret")
        );
        let client = jaas_section(text, "Client").unwrap().unwrap();
        assert_eq!(client[0].1.get("username").map(String::as_str), Some("bob"));
        assert_eq!(jaas_section(text, "Other").unwrap(), None);
        assert_eq!(jaas_section("", "Server").unwrap(), None);
        assert!(jaas_section("Server { x required a=\"b\"", "Server").is_err());
    }
}
