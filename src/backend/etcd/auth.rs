//! etcd authentication: a user name and password traded for a token
//! (`Authenticate`), which every call then carries, and traded again once
//! when etcd says the token is invalid (simple tokens expire after
//! `--auth-token-ttl`, 5 min by default). Neither the password nor the
//! token is ever logged or shown.

use std::fmt;
use std::sync::Mutex;

use hyper::header::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub(super) struct Credentials {
    username: String,
    password: String,
    token: Mutex<Option<HeaderValue>>,
    /// One authentication at a time: the others wait and reuse its token.
    authenticating: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
pub(super) struct AuthenticateRequest {
    pub(super) name: String,
    pub(super) password: String,
}

#[derive(Deserialize)]
pub(super) struct AuthenticateResponse {
    #[serde(default)]
    pub(super) token: String,
}

impl Credentials {
    pub(super) fn new(username: String, password: String) -> Self {
        Credentials {
            username,
            password,
            token: Mutex::new(None),
            authenticating: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Option<HeaderValue> {
        self.token.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the token so that the next request authenticates again.
    pub(super) fn forget(&self) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The token, authenticating first if there is none.
    pub(super) async fn token<F, Fut>(&self, authenticate: F) -> Result<HeaderValue>
    where
        F: FnOnce(AuthenticateRequest) -> Fut,
        Fut: std::future::Future<Output = Result<AuthenticateResponse>>,
    {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let _one_at_a_time = self.authenticating.lock().await;
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let reply = authenticate(AuthenticateRequest {
            name: self.username.clone(),
            password: self.password.clone(),
        })
        .await?;
        let mut token = HeaderValue::from_str(&reply.token)
            .map_err(|_| Error::malformed("etcd sent a token that is not a header value"))?;
        if reply.token.is_empty() {
            return Err(Error::malformed("etcd sent an empty token"));
        }
        token.set_sensitive(true);
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(token)
    }
}
