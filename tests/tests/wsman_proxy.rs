//! HTTPS through a real HTTP proxy (tinyproxy, CONNECT tunnel), taken from
//! the environment, and NO_PROXY bypassing it. Own test binary: proxy
//! environment variables are process-wide.

mod support;

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{open_pool, Peer, Psrp};
use wsman::{Auth, CommandRequest, ProxyConfig, Secret, WsmanClient, WsmanConfig};

struct Tinyproxy {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tinyproxy() -> (Tinyproxy, u16) {
    tinyproxy_with("")
}

/// tinyproxy with `extra` configuration lines.
fn tinyproxy_with(extra: &str) -> (Tinyproxy, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tinyproxy.log");
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 60\nLogLevel Connect\nLogFile \"{}\"\nMaxClients 20\nAllow 127.0.0.1\n{extra}",
            log.display()
        ),
    )
    .unwrap();
    let bin = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("tinyproxy not installed: tests/run.sh installs it");
    let child = Command::new(bin)
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tinyproxy did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (
        Tinyproxy {
            child,
            log,
            _dir: dir,
        },
        port,
    )
}

async fn run_once(client: &WsmanClient) {
    let mut psrp = Psrp::start();
    let shell = open_pool(Peer::shared(), client, &mut psrp, "Microsoft.PowerShell").await;
    let (pid, frags) = psrp.pipeline(
        "Write-Output",
        json!({"InputObject": "through the proxy"}),
        None,
    );
    let cmd = client
        .command(&shell, CommandRequest::psrp(pid, &frags[0]))
        .await
        .unwrap();
    assert!(!cmd.is_empty());
    client.delete_shell(&shell).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_a_connect_proxy_from_the_environment() {
    let peer = Peer::shared();
    let info = peer.info();
    let (proxy, port) = tinyproxy();
    std::env::set_var("HTTPS_PROXY", format!("http://127.0.0.1:{port}"));
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");

    let client_for = |auth: Auth| {
        let mut c = WsmanConfig::new(&info.https_url(), auth).unwrap();
        c.tls.ca_bundle = Some(info.ca_file.clone());
        c.operation_timeout = Duration::from_secs(5);
        WsmanClient::new(c).unwrap()
    };
    // NTLM (with channel bindings: the tunnel is end to end) and Kerberos.
    run_once(&client_for(Auth::Ntlm {
        username: info.user.clone(),
        password: Secret::new(info.password.clone()),
    }))
    .await;
    run_once(&client_for(Auth::Kerberos {
        username: None,
        password: None,
        spn: None,
        delegate: false,
    }))
    .await;
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    let tunnels = log.matches("CONNECT").count();
    assert!(tunnels >= 2, "the proxy saw {tunnels} CONNECTs:\n{log}");

    // NO_PROXY=localhost: straight to the server, the proxy sees nothing new.
    std::env::set_var("NO_PROXY", "localhost");
    run_once(&client_for(Auth::Basic {
        username: info.user.clone(),
        password: Secret::new(info.password.clone()),
    }))
    .await;
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert_eq!(
        log.matches("CONNECT").count(),
        tunnels,
        "NO_PROXY was ignored"
    );
}

/// A proxy that wants credentials gets them from the proxy URL
/// (`Proxy-Authorization` on CONNECT), refuses wrong ones with a clear
/// error, and the configuration's Debug never shows the proxy password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_through_a_proxy_that_wants_credentials() {
    let peer = Peer::shared();
    let info = peer.info();
    let (_proxy, port) = tinyproxy_with("BasicAuth proxyuser pr0xy-pa55\n");
    let client_for = |proxy_password: &str| {
        let mut c = WsmanConfig::new(
            &info.https_url(),
            Auth::Ntlm {
                username: info.user.clone(),
                password: Secret::new(info.password.clone()),
            },
        )
        .unwrap();
        c.tls.ca_bundle = Some(info.ca_file.clone());
        c.operation_timeout = Duration::from_secs(5);
        c.proxy = ProxyConfig::Url(format!(
            "http://proxyuser:{proxy_password}@127.0.0.1:{port}"
        ));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(proxy_password) && shown.contains("proxyuser:<redacted>@"),
            "{shown}"
        );
        WsmanClient::new(c).unwrap()
    };
    run_once(&client_for("pr0xy-pa55")).await;

    let (pool_id, creation_xml) = Psrp::start().open();
    let err = client_for("wrong-pa55")
        .create_shell(
            wsman::CreateShell::powershell("Microsoft.PowerShell")
                .with_shell_id(pool_id)
                .with_creation_xml(creation_xml),
        )
        .await
        .unwrap_err()
        .to_string();
    // (tinyproxy answers a CONNECT with wrong credentials 401, not 407.)
    assert!(
        err.contains("proxy refused CONNECT") && err.contains("Unauthorized"),
        "{err}"
    );
    assert!(!err.contains("wrong-pa55"), "{err}");
}
