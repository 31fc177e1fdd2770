//! Creates a shell, runs one command in it and deletes the shell: the
//! WS-Management layer on its own, with a WinRS `cmd.exe` shell (no PSRP).
//!
//! ```sh
//! WSMAN_ENDPOINT=http://win.example:5985/wsman WSMAN_AUTH=negotiate \
//! WSMAN_USER='EXAMPLE\alice' WSMAN_PASSWORD=... \
//!     cargo run -p wsman --example run_command -- ipconfig /all
//! ```
//!
//! `WSMAN_AUTH` is basic, ntlm, kerberos or negotiate; with kerberos and no
//! user the ticket cache is used (`kinit` first). `WSMAN_CA_BUNDLE` names a
//! PEM file of trusted CAs for HTTPS.

use wsman::{
    shell::signal, Auth, CommandRequest, CreateShell, ReceiveOutcome, Secret, WsmanClient,
    WsmanConfig,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint =
        std::env::var("WSMAN_ENDPOINT").unwrap_or_else(|_| "http://localhost:5985/wsman".into());
    let user = std::env::var("WSMAN_USER").ok();
    let password = std::env::var("WSMAN_PASSWORD").ok().map(Secret::new);
    let need = |what: &str, v: Option<String>| {
        v.ok_or_else(|| format!("{what} is required for this auth"))
    };
    let auth = match std::env::var("WSMAN_AUTH")
        .as_deref()
        .unwrap_or("negotiate")
    {
        "basic" => Auth::Basic {
            username: need("WSMAN_USER", user)?,
            password: password.ok_or("WSMAN_PASSWORD is required")?,
        },
        "ntlm" => Auth::Ntlm {
            username: need("WSMAN_USER", user)?,
            password: password.ok_or("WSMAN_PASSWORD is required")?,
        },
        "kerberos" => Auth::Kerberos {
            username: user,
            password,
            spn: None,
            delegate: false,
        },
        _ => Auth::Negotiate {
            username: user,
            password,
            spn: None,
            delegate: false,
        },
    };
    let mut config = WsmanConfig::new(&endpoint, auth)?;
    if let Some(ca) = std::env::var_os("WSMAN_CA_BUNDLE") {
        config.tls.ca_bundle = Some(ca.into());
    }
    let client = WsmanClient::new(config)?;

    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args = vec!["hostname".into()];
    }
    let command = args.remove(0);

    let shell = client.create_shell(CreateShell::cmd()).await?;
    let result = async {
        let id = client
            .command(&shell, CommandRequest::new(command, args))
            .await?;
        let mut exit_code = None;
        while exit_code.is_none() {
            match client
                .receive_streams(&shell, Some(&id), "stdout stderr")
                .await?
            {
                ReceiveOutcome::TimedOut => continue,
                ReceiveOutcome::Data(r) => {
                    print!("{}", String::from_utf8_lossy(&r.stream_bytes("stdout")));
                    eprint!("{}", String::from_utf8_lossy(&r.stream_bytes("stderr")));
                    if r.is_done() {
                        exit_code = Some(r.command_state.and_then(|s| s.exit_code).unwrap_or(0));
                    }
                }
            }
        }
        client.signal(&shell, &id, signal::TERMINATE).await?;
        Ok::<_, wsman::Error>(exit_code.unwrap_or(0))
    }
    .await;
    // Always release the shell on the server, also after an error.
    client.delete_shell(&shell).await?;
    let code = result?;
    std::process::exit(code as i32);
}
