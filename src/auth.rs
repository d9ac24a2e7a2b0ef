//! Bearer tokens (`--auth-token-file`): the set a server accepts, compared in constant time, and the gRPC check.
//!
//! The file holds one token a line (RFC 6750 `b64token` characters); blank lines and lines starting with `#` are
//! ignored. A token is never logged: [`TokenSet`]'s `Debug` shows only how many there are.

use std::{fmt, path::Path, sync::Arc};

use subtle::{Choice, ConstantTimeEq as _};
use tokio::sync::watch;
use tonic::{Request, Status};

/// The tokens a server accepts.
pub struct TokenSet {
    tokens: Vec<Box<[u8]>>,
}

/// The live token set; a reload sends a new one.
pub type LiveTokens = watch::Receiver<Arc<TokenSet>>;

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a usable token.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: String,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it (never the token itself).
        message: &'static str,
    },
    /// No token at all: every client would be refused.
    #[error("{path}: no token in it (one a line; blank lines and # comments are ignored)")]
    Empty {
        /// The file.
        path: String,
    },
}

impl TokenSet {
    /// Reads a token file.
    ///
    /// # Errors
    /// The file cannot be read, a line holds something that cannot be a header value's token, or there is no token.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenFileError::Read { path: path.display().to_string(), source })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses a token file's text; `path` names it in errors.
    ///
    /// # Errors
    /// As [`TokenSet::load`].
    pub fn parse(path: &str, text: &str) -> Result<Self, TokenFileError> {
        let mut tokens = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let token = line.trim();
            if token.is_empty() || token.starts_with('#') {
                continue;
            }
            if !is_b64token(token) {
                let message = "a bearer token is letters, digits and - . _ ~ + /, then optionally = (RFC 6750)";
                return Err(TokenFileError::Line { path: path.to_owned(), line: index + 1, message });
            }
            tokens.push(token.as_bytes().into());
        }
        if tokens.is_empty() {
            return Err(TokenFileError::Empty { path: path.to_owned() });
        }
        Ok(Self { tokens })
    }

    /// How many tokens the set holds.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: a set holds at least one token.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every token is compared, each in time independent of where the
    /// bytes differ, so the answer's timing tells nothing about how close a guess was.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut found = Choice::from(0);
        for token in &self.tokens {
            found |= token.as_ref().ct_eq(presented);
        }
        found.into()
    }

    /// [`TokenSet::accepts`] as a verdict.
    ///
    /// # Errors
    /// [`Refusal::Invalid`] when `presented` is not one of the tokens.
    pub fn verify(&self, presented: &[u8]) -> Result<(), Refusal> {
        if self.accepts(presented) { Ok(()) } else { Err(Refusal::Invalid) }
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet").field("tokens", &self.tokens.len()).finish_non_exhaustive()
    }
}

/// Loads the token file again and publishes it, or logs why not; the old tokens stay live on any error.
pub fn reload(path: &Path, live: &watch::Sender<Arc<TokenSet>>, cause: &str) {
    match TokenSet::load(path) {
        Ok(tokens) => {
            let count = tokens.len();
            live.send_replace(Arc::new(tokens));
            tracing::info!(file = %path.display(), tokens = count, cause, "Reloaded the bearer tokens.");
        }
        Err(error) => tracing::error!(cause, %error, "Rejected the token file; the old tokens stay live."),
    }
}

/// Whether `token` has the form of RFC 6750's `b64token`, which is also safe in a cookie and a query string.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The token of an `authorization: Bearer TOKEN` header value (the scheme in any case), or `None`.
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| token.trim_ascii())
}

/// Why a request was refused, in words a client may see (never the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `authorization: Bearer` credential.
    Missing,
    /// A token that is not in the set.
    Invalid,
}

impl Refusal {
    /// The message a client gets.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "missing bearer token: send `authorization: Bearer TOKEN`",
            Refusal::Invalid => "invalid bearer token",
        }
    }
}

/// Checks a presented token (the `authorization` header's value, if any) against `tokens`.
///
/// # Errors
/// The refusal, when there is no bearer token or it is not in the set.
pub fn check(tokens: &TokenSet, authorization: Option<&[u8]>) -> Result<(), Refusal> {
    tokens.verify(authorization.and_then(bearer).ok_or(Refusal::Missing)?)
}

/// The gRPC check of the alert service's calls: with tokens configured, a call without a valid bearer token gets
/// UNAUTHENTICATED before it reaches the service. Without tokens every call passes.
#[derive(Debug, Clone)]
pub struct GrpcAuth {
    tokens: Option<LiveTokens>,
}

impl GrpcAuth {
    /// A check against `tokens`, or none.
    pub fn new(tokens: Option<LiveTokens>) -> Self {
        Self { tokens }
    }
}

impl tonic::service::Interceptor for GrpcAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(tokens) = &self.tokens else { return Ok(request) };
        let authorization = request.metadata().get("authorization").map(|value| value.as_bytes());
        match check(&tokens.borrow(), authorization) {
            Ok(()) => Ok(request),
            Err(refusal) => Err(Status::unauthenticated(refusal.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_skips_blank_lines_and_comments_and_trims() {
        let set = TokenSet::parse("t", "# ops\n\n  alpha \nbeta\n").unwrap();
        assert_eq!(set.len(), 2);
        assert!(set.accepts(b"alpha") && set.accepts(b"beta"));
        assert!(!set.accepts(b"alph") && !set.accepts(b"alphaa") && !set.accepts(b"") && !set.accepts(b"# ops"));
    }

    #[test]
    fn a_token_file_without_tokens_or_with_a_spaced_token_is_refused_without_showing_it() {
        assert!(matches!(TokenSet::parse("t", "# only a comment\n\n"), Err(TokenFileError::Empty { .. })));
        let error = TokenSet::parse("t", "ok\nsecret word\n").unwrap_err();
        assert!(matches!(error, TokenFileError::Line { line: 2, .. }));
        assert!(matches!(TokenSet::parse("t", "semi;colon"), Err(TokenFileError::Line { line: 1, .. })));
        assert_eq!(TokenSet::parse("t", "a-b.c_d~e+f/g==").unwrap().len(), 1);
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(!format!("{:?}", TokenSet::parse("t", "secret").unwrap()).contains("secret"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"abc"), None);
        let set = TokenSet::parse("t", "abc").unwrap();
        assert_eq!(check(&set, None), Err(Refusal::Missing));
        assert_eq!(check(&set, Some(b"Token abc")), Err(Refusal::Missing));
        assert_eq!(check(&set, Some(b"Bearer abd")), Err(Refusal::Invalid));
        assert_eq!(check(&set, Some(b"Bearer abc")), Ok(()));
    }
}
