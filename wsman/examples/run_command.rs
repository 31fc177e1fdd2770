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
//!
//! `tests/tests/wsman_example.rs` runs [`run`] against the test peer's
//! emulated cmd shell (tests/peer/winrs.py) over NTLM and Kerberos.

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
    let output = run(&client, &command, &args).await?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    // Exit codes beyond i32 (Windows uses u32) wrap as the shell would.
    std::process::exit(output.exit_code as i32);
}

/// What a finished command produced.
pub struct CommandOutput {
    /// Bytes on stdout.
    pub stdout: Vec<u8>,
    /// Bytes on stderr.
    pub stderr: Vec<u8>,
    /// The process exit code.
    pub exit_code: i64,
}

/// Creates a cmd shell, runs `command` with `args` in it until it is done,
/// releases the command and deletes the shell, also when something fails.
pub async fn run(
    client: &WsmanClient,
    command: &str,
    args: &[String],
) -> Result<CommandOutput, wsman::Error> {
    let shell = client.create_shell(CreateShell::cmd()).await?;
    let result = async {
        let id = client
            .command(&shell, CommandRequest::new(command, args.to_vec()))
            .await?;
        let mut output = CommandOutput {
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code: 0,
        };
        loop {
            match client
                .receive_streams(&shell, Some(&id), "stdout stderr")
                .await?
            {
                ReceiveOutcome::TimedOut => continue,
                ReceiveOutcome::Data(r) => {
                    output.stdout.extend(r.stream_bytes("stdout"));
                    output.stderr.extend(r.stream_bytes("stderr"));
                    if r.is_done() {
                        output.exit_code = r.command_state.and_then(|s| s.exit_code).unwrap_or(0);
                        break;
                    }
                }
            }
        }
        client.signal(&shell, &id, signal::TERMINATE).await?;
        Ok::<_, wsman::Error>(output)
    }
    .await;
    // Always release the shell on the server, also after an error.
    let deleted = client.delete_shell(&shell).await;
    let output = result?;
    deleted?;
    Ok(output)
}
