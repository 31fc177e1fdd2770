//! The SecureString session key exchange of a pool (MS-PSRP 3.1.4.8,
//! 3.1.5.4.3-3.1.5.4.5), driven over WS-Man: PUBLIC_KEY goes out on the
//! pool, ENCRYPTED_SESSION_KEY and PUBLIC_KEY_REQUEST come back on a
//! Receive targeted to the pool. The cryptography is
//! [`crate::session_key`]'s.
//!
//! The exchange starts when a pipeline with a SecureString parameter or
//! input is about to be sent (before its Command), when the program asks
//! ([`super::RunspacePool::exchange_keys`]), or when the server sends
//! PUBLIC_KEY_REQUEST (it must, before it can send a SecureString). The
//! client keeps no pool Receive open while pipelines produce output; once
//! a pipeline's Receive comes back empty (the server was quiet for a whole
//! operation timeout: it may be waiting for the key), the pool's messages
//! are watched until no pipeline is left.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use wsman::ReceiveOutcome;

use crate::message::{KeyBlob, RunspacePoolState};
use crate::pool::{PoolEvent, Target};
use crate::session_key::{ExchangeKey, SessionKey, SessionKeyError};

use super::error::ClientError;
use super::shared::Shared;

/// Where a pool is in the exchange. One key pair per pool, used for one
/// ENCRYPTED_SESSION_KEY only.
#[derive(Default)]
pub(crate) struct KeyState {
    /// The key pair whose public half was sent, until the answer comes.
    exchange: Option<ExchangeKey>,
    /// PUBLIC_KEY was sent (it is sent once per pool).
    sent: bool,
    session: Option<Arc<SessionKey>>,
    /// Why the exchange failed; later attempts fail the same way.
    failed: Option<SessionKeyError>,
}

const EXCHANGE: &str = "exchanging the SecureString session key";

fn key_error(operation: &'static str) -> impl FnOnce(SessionKeyError) -> ClientError {
    move |source| ClientError::SessionKey { operation, source }
}

impl Shared {
    fn keys(&self) -> MutexGuard<'_, KeyState> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session key, if the exchange is done; the exchange's error if it
    /// failed.
    pub(crate) fn session_key_now(&self) -> Result<Option<Arc<SessionKey>>, ClientError> {
        let keys = self.keys();
        if let Some(e) = &keys.failed {
            return Err(key_error(EXCHANGE)(e.clone()));
        }
        Ok(keys.session.clone())
    }

    /// PUBLIC_KEY went out and neither the key nor an error came back yet.
    pub(crate) fn exchange_pending(&self) -> bool {
        let keys = self.keys();
        keys.sent && keys.session.is_none() && keys.failed.is_none()
    }

    /// Sends PUBLIC_KEY with a fresh key pair, unless it was sent already.
    async fn send_public_key(&self) -> Result<(), ClientError> {
        let blob = {
            let mut keys = self.keys();
            if keys.sent {
                return Ok(());
            }
            let exchange = ExchangeKey::generate().map_err(key_error(EXCHANGE))?;
            let blob = KeyBlob {
                base64: exchange.public_key_base64(),
            };
            keys.exchange = Some(exchange);
            keys.sent = true;
            blob
        };
        tracing::debug!("SecureString session key: sending PUBLIC_KEY");
        let _sending = self.send_lock.lock().await;
        self.core()
            .send_public_key(blob)
            .map_err(|e| ClientError::pool("sending the public key (PUBLIC_KEY)", e))?;
        self.flush_locked().await
    }

    /// The session key, exchanged first if needed (bounded by the pool's
    /// session key timeout).
    pub(crate) async fn session_key(&self) -> Result<Arc<SessionKey>, ClientError> {
        if let Some(key) = self.session_key_now()? {
            return Ok(key);
        }
        let timeout = self.limits.session_key_timeout;
        let exchange = async {
            self.send_public_key().await?;
            loop {
                if let Some(key) = self.session_key_now()? {
                    return Ok(key);
                }
                // One pool Receive at a time: the watcher may hold it and
                // take the answer itself.
                let _receiving = self.pool_receive.lock().await;
                if let Some(key) = self.session_key_now()? {
                    return Ok(key);
                }
                self.receive_pool_once(EXCHANGE).await?;
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                what: "the SecureString session key exchange (no ENCRYPTED_SESSION_KEY)",
                after: timeout,
            }),
        }
    }

    /// One Receive on the pool, and what its messages ask for. Call with
    /// `pool_receive` held.
    async fn receive_pool_once(&self, operation: &'static str) -> Result<(), ClientError> {
        let data = match self.client.receive(&self.shell, None).await {
            Ok(ReceiveOutcome::TimedOut) => return Ok(()),
            Ok(ReceiveOutcome::Data(d)) => d,
            Err(e) => {
                return Err(self.error("receiving runspace pool messages (WS-Man Receive)", e))
            }
        };
        for event in self.feed(Target::Pool, &data, operation)? {
            match event {
                PoolEvent::EncryptedSessionKey(blob) => self.accept_session_key(&blob)?,
                PoolEvent::PublicKeyRequest => {
                    tracing::debug!("SecureString session key: the server sent PUBLIC_KEY_REQUEST");
                    self.send_public_key().await?;
                }
                PoolEvent::HostCall(call) if call.needs_response() => {
                    self.answer_host_call(Target::Pool, &call).await?;
                }
                PoolEvent::StateChanged {
                    state: RunspacePoolState::Broken | RunspacePoolState::Closed,
                    error,
                } => {
                    return Err(ClientError::PoolBroken {
                        configuration: self.configuration.clone(),
                        error: error.map(Box::new),
                    })
                }
                other => tracing::debug!(?other, "runspace pool message"),
            }
        }
        Ok(())
    }

    fn accept_session_key(&self, blob: &KeyBlob) -> Result<(), ClientError> {
        let mut keys = self.keys();
        let Some(exchange) = keys.exchange.take() else {
            return Err(ClientError::UnexpectedResponse {
                operation: EXCHANGE,
                detail: "the server sent an ENCRYPTED_SESSION_KEY that was not asked for \
                         (no PUBLIC_KEY pending)"
                    .to_owned(),
            });
        };
        match exchange.decrypt_session_key(&blob.base64) {
            Ok(key) => {
                keys.session = Some(Arc::new(key));
                tracing::debug!("SecureString session key: exchanged");
                Ok(())
            }
            Err(e) => {
                keys.failed = Some(e.clone());
                Err(key_error("reading the server's ENCRYPTED_SESSION_KEY")(e))
            }
        }
    }

    /// Watches the pool's own messages while pipelines run (see the module
    /// notes). At most one watcher per pool; it ends when no pipeline is
    /// left, the pool is closed, or a pool Receive fails.
    pub(crate) fn watch_pool(self: &Arc<Self>) {
        if self.pool_watch.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            tracing::debug!("watching runspace pool messages while pipelines run");
            // Also until a pending exchange is answered: the server may
            // write the SecureStrings (and end the pipeline) before the
            // ENCRYPTED_SESSION_KEY is received.
            // A disconnected shell takes no Receive: the watch ends, and the
            // next quiet operation timeout after a reconnect starts it again.
            while !shared.is_closed()
                && !shared.is_disconnected()
                && (shared.has_pipelines() || shared.exchange_pending())
            {
                let _receiving = shared.pool_receive.lock().await;
                if let Err(e) = shared
                    .receive_pool_once("watching runspace pool messages")
                    .await
                {
                    if !shared.is_closed() && !shared.is_disconnected() {
                        tracing::warn!("runspace pool messages: {e}");
                    }
                    break;
                }
            }
            shared.pool_watch.store(false, Ordering::SeqCst);
        });
    }
}
