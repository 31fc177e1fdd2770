//! SecureStrings through the async client against the test peer, whose
//! server side is psrpcore's (its own RSA and AES code): parameters made
//! with `SecureString::new` arrive intact (the peer decrypts them and
//! reports the SHA-256), the server's PUBLIC_KEY_REQUEST is answered, and
//! received SecureStrings stay encrypted until the program asks.

mod client_common;

use std::time::Duration;

use client_common::{basic_https, close, kerberos, ntlm, open, peer, Peer};
use psrp_core::client::{
    to_json, ClientError, Command, ErrorKind, PipelineState, PoolOptions, PsValue, RunspacePool,
    SecureString, SessionKeyError,
};
use sha2::{Digest, Sha256};

const SECRET: &str = "Pässw0rd-🔑-with a long tail to span several AES blocks";

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The peer's record of the shell's key exchange.
fn session_key_state(p: &Peer, shell_id: &str) -> serde_json::Value {
    let shell = tokio::task::block_in_place(|| p.shell(shell_id).unwrap()).expect("shell open");
    shell["session_key"].clone()
}

async fn secret_hash(pool: &RunspacePool, secret: &str) -> serde_json::Value {
    let command = Command::new("Get-SecretHash").param("Secret", SecureString::new(secret));
    assert!(
        secret.is_empty() || !format!("{command:?}").contains(secret),
        "the plaintext shows in Debug"
    );
    let result = pool.invoke(command).await.unwrap();
    assert_eq!(result.state, PipelineState::Completed, "{result:?}");
    let output = result.output_json();
    assert_eq!(output.len(), 1, "{output:?}");
    output[0].clone()
}

async fn parameter_arrives_intact(p: &Peer, pool: RunspacePool) {
    assert!(!pool.has_session_key());
    let shell_id = pool.shell_id().to_owned();
    let reported = secret_hash(&pool, SECRET).await;
    assert_eq!(reported["Sha256"], sha256_hex(SECRET), "{reported}");
    assert_eq!(reported["Length"], SECRET.chars().count(), "{reported}");
    assert!(pool.has_session_key());
    // The client started the exchange (before the Command); the server did
    // not have to ask.
    let state = session_key_state(p, &shell_id);
    assert_eq!(state["exchanged"], true, "{state}");
    assert_eq!(state["requested_by_server"], 0, "{state}");
    // A second secret reuses the session key; an empty one works too.
    let reported = secret_hash(&pool, "").await;
    assert_eq!(reported["Sha256"], sha256_hex(""), "{reported}");
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_string_parameter_arrives_intact_over_kerberos_http() {
    let p = peer();
    let pool = open(p, kerberos(p)).await;
    parameter_arrives_intact(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_string_parameter_arrives_intact_over_https() {
    let p = peer();
    let pool = open(p, basic_https(p)).await;
    parameter_arrives_intact(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_strings_in_lists_and_input_are_encrypted_too() {
    let p = peer();
    let pool = open(p, ntlm(p)).await;
    // Invoke-Echo reports the CLIXML element each argument arrived as.
    let result = pool
        .invoke(
            Command::new("Invoke-Echo")
                .param("One", SecureString::new("a"))
                .param(
                    "Many",
                    psrp_core::client::list([SecureString::new("b"), SecureString::new("c")]),
                ),
        )
        .await
        .unwrap();
    assert_eq!(result.state, PipelineState::Completed, "{result:?}");
    let text = serde_json::Value::Array(result.output_json()).to_string();
    assert!(text.contains("SS"), "{text}");
    for secret in ["\"a\"", "\"b\"", "\"c\""] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_public_key_request_is_answered_and_output_decrypts_on_request() {
    let p = peer();
    let pool = open(p, kerberos(p)).await;
    let shell_id = pool.shell_id().to_owned();
    assert!(!pool.has_session_key());
    // The peer must send PUBLIC_KEY_REQUEST on the pool and wait for our
    // PUBLIC_KEY before it can write the SecureStrings.
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        pool.invoke(
            Command::new("New-SecureSecret")
                .param("Text", SECRET)
                .param("Count", 2),
        ),
    )
    .await
    .expect("the server's PUBLIC_KEY_REQUEST was not answered")
    .unwrap();
    assert_eq!(result.state, PipelineState::Completed, "{result:?}");
    assert_eq!(result.output.len(), 2);
    let state = session_key_state(p, &shell_id);
    assert_eq!(state["requested_by_server"], 1, "{state}");
    assert_eq!(state["exchanged"], true, "{state}");
    assert!(pool.has_session_key());

    for value in &result.output {
        let PsValue::SecureString(secret) = value else {
            panic!("not a SecureString: {value:?}");
        };
        assert!(secret.is_sealed());
        // Shown as its type name, never the text.
        assert_eq!(to_json(value), "System.Security.SecureString");
        assert!(!format!("{value:?}").contains("Pässw0rd"));
        // Decrypted only when asked.
        assert_eq!(&*pool.decrypt(secret).unwrap(), SECRET);
    }
    assert!(!format!("{result:?}").contains("Pässw0rd"));

    // A SecureString from another pool (another session key) does not
    // decrypt: a typed error.
    let other = open(p, kerberos(p)).await;
    let PsValue::SecureString(secret) = &result.output[0] else {
        unreachable!()
    };
    let e = other.decrypt(secret).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("no session key"), "{e}");
    other.exchange_keys().await.unwrap();
    // Bad padding, or (about 1 in 256) a valid padding of an odd length.
    let e = other.decrypt(secret).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::SessionKey {
                source: SessionKeyError::Decrypt | SessionKeyError::Utf16,
                ..
            }
        ),
        "{e}"
    );
    close(p, other).await;
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_keys_up_front_then_the_server_does_not_ask() {
    let p = peer();
    let pool = RunspacePool::open_with(
        kerberos(p),
        PoolOptions::new().session_key_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let shell_id = pool.shell_id().to_owned();
    pool.exchange_keys().await.unwrap();
    pool.exchange_keys().await.unwrap(); // once per pool
    let result = pool
        .invoke(Command::new("New-SecureSecret").param("Text", "x"))
        .await
        .unwrap();
    let PsValue::SecureString(secret) = &result.output[0] else {
        panic!("{result:?}")
    };
    assert_eq!(&*pool.decrypt(secret).unwrap(), "x");
    let state = session_key_state(p, &shell_id);
    assert_eq!(state["requested_by_server"], 0, "{state}");
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_session_key_is_a_typed_error_and_the_shell_is_deleted() {
    // An instance of its own: the attack is armed per instance.
    let p = tokio::task::spawn_blocking(|| {
        psrp_tests::Peer::start(&psrp_tests::PeerOptions::default()).unwrap()
    })
    .await
    .unwrap();
    tokio::task::block_in_place(|| {
        p.add_hostile(&psrp_tests::HostileRule::new(
            psrp_tests::Attack::TamperedSessionKey,
        ))
        .unwrap()
    });
    let pool = open(&p, kerberos(&p)).await;
    let shell_id = pool.shell_id().to_owned();
    let e = pool
        .invoke(Command::new("Get-SecretHash").param("Secret", SecureString::new(SECRET)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::SessionKey {
                source: SessionKeyError::Rsa,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert!(e.to_string().contains("ENCRYPTED_SESSION_KEY"), "{e}");
    assert!(!e.to_string().contains(SECRET) && !format!("{e:?}").contains(SECRET));
    assert!(!pool.has_session_key());
    // The pipeline was never sent (the secret stayed here), and the next
    // attempt fails the same way instead of waiting.
    let state = session_key_state(&p, &shell_id);
    assert_eq!(state["exchanged"], true, "{state}");
    let again = pool
        .invoke(Command::new("Get-SecretHash").param("Secret", SecureString::new("x")))
        .await
        .unwrap_err();
    assert!(matches!(again, ClientError::SessionKey { .. }), "{again}");
    let attacked = tokio::task::block_in_place(|| p.attacked("tamper_session_key").unwrap());
    assert_eq!(attacked.len(), 1, "{attacked:?}");
    close(&p, pool).await;
}
