//! The command-line interface: subcommands, flags and their environment
//! variables, and the help text (which documents the exit status).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Printed at the end of `--help`.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0    success
  1    the pipeline ran but wrote errors (non-terminating error records)
  2    the pipeline failed (terminating error, command not found or not
       visible in the JEA endpoint, also when --check finds it so,
       timeout while running, a message larger than --max-message-size)
  3    connection, authentication or transport failure
  64   usage or configuration error (bad flags, parameters, profile; a
       parameter name or value type that --check finds wrong)
  65   `psrp clixml`: the input is not valid CLIXML
  130  interrupted by SIGINT (143: SIGTERM); the pipeline was stopped and
       the shell deleted
With several hosts the exit status is the worst of the hosts' statuses.

Precedence: command-line flags, then PSRP_* environment variables, then the
profile (--profile / PSRP_PROFILE) from the config file (--config /
PSRP_CONFIG, default ~/.config/psrp/config.toml), then defaults.
The password is never a flag: PSRP_PASSWORD, --password-stdin, the profile's
password_env, or a prompt when stdin is a terminal.";

/// Run PowerShell commands on Windows hosts over WinRM (PSRP), with output as
/// JSON on stdout and every other PowerShell stream as log lines on stderr.
#[derive(Debug, Parser)]
#[command(name = "psrp", version, after_long_help = EXIT_STATUS_HELP, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Commands,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Invoke one command (cmdlet, function) with parameters; works on JEA
    /// (NoLanguage) endpoints.
    // A later flag replaces an earlier one (for aliases and wrappers).
    #[command(after_long_help = EXIT_STATUS_HELP, args_override_self = true)]
    Invoke(InvokeArgs),
    /// Run a PowerShell script from a file, or from stdin with `-` (needs an
    /// endpoint that allows the language; JEA endpoints usually do not).
    // A later flag replaces an earlier one (for aliases and wrappers).
    #[command(after_long_help = EXIT_STATUS_HELP, args_override_self = true)]
    Script(ScriptArgs),
    /// Check the connection step by step (DNS, TCP, TLS, authentication,
    /// Kerberos, NTLM, WinRM) and say, for each failure, its cause and fix.
    /// Exit status 0 when a command could run, 3 otherwise.
    // A later flag replaces an earlier one (for aliases and wrappers).
    #[command(after_long_help = EXIT_STATUS_HELP, args_override_self = true)]
    Doctor(DoctorArgs),
    /// Connect to a job started with `psrp invoke --detach` and stream its
    /// output as `invoke` would (same formats, logs and exit status), then
    /// delete its shell.
    #[command(after_long_help = EXIT_STATUS_HELP, args_override_self = true)]
    Receive(crate::jobs::HandleArgs),
    /// List your disconnected shells (detached jobs) on the host(s), one
    /// JSON object per line.
    #[command(args_override_self = true)]
    Jobs(crate::jobs::JobsArgs),
    /// Stop the pipeline of a detached job (its shell stays, disconnected:
    /// `psrp receive` still gets what it wrote, `psrp remove` deletes it).
    #[command(args_override_self = true)]
    Stop(crate::jobs::HandleArgs),
    /// Delete the shell of a detached job, with its output.
    #[command(args_override_self = true)]
    Remove(crate::jobs::HandleArgs),
    /// Copy a local file to the remote host, in SHA-256 checked chunks, several
    /// at once (needs an endpoint that allows scripts, not a JEA one).
    #[command(args_override_self = true)]
    Copy(crate::copy_cmd::CopyArgs),
    /// Fetch a file from the remote host, in SHA-256 checked chunks, several
    /// at once (needs an endpoint that allows scripts, not a JEA one).
    #[command(args_override_self = true)]
    Fetch(crate::copy_cmd::FetchArgs),
    /// Convert CLIXML (an Export-Clixml file, `#< CLIXML` stderr text, or one
    /// PSRP message payload) to JSON, without PowerShell.
    // A later flag replaces an earlier one (for aliases and wrappers).
    #[command(after_long_help = EXIT_STATUS_HELP, args_override_self = true)]
    Clixml(ClixmlArgs),
    /// List the commands an endpoint lets this user run (JEA-aware), with
    /// their parameters, types, aliases and switches: a table on a
    /// terminal, JSON otherwise.
    // A later flag replaces an earlier one (for aliases and wrappers). The
    // variant is not called Commands, the name of this enum (clippy).
    #[command(
        name = "commands",
        after_long_help = EXIT_STATUS_HELP,
        args_override_self = true
    )]
    Endpoint(CommandsArgs),
    /// Print a shell completion script: `psrp completions bash >
    /// ~/.local/share/bash-completion/completions/psrp`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) of psrp, or write one page per subcommand
    /// to a directory with --dir.
    Man(ManArgs),
}

/// `psrp commands`.
#[derive(Debug, Args)]
pub struct CommandsArgs {
    /// Command name patterns (wildcards: `Get-*`); all commands by default.
    #[arg(value_name = "NAME-PATTERN")]
    pub patterns: Vec<String>,
    /// Output: table (the default on a terminal), json (the default
    /// otherwise) or ndjson.
    #[arg(short = 'o', long, value_enum, env = "PSRP_COMMANDS_OUTPUT")]
    pub output: Option<CommandsFormat>,
    /// Also list the common parameters (Verbose, ErrorAction, ...) in the
    /// table (JSON always has them, marked "Common": true).
    #[arg(long)]
    pub common: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `psrp commands --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CommandsFormat {
    /// One block per command, one line per parameter.
    Table,
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Ndjson,
}

/// `psrp completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Shells `psrp completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
    /// PowerShell.
    Powershell,
}

/// `psrp man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write psrp.1 and one psrp-<subcommand>.1 per subcommand into this
    /// directory instead of printing psrp.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `psrp invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The command to invoke, e.g. Get-ChildItem.
    pub command: String,
    /// Positional arguments (strings; put them after `--` when they start
    /// with a dash).
    pub args: Vec<String>,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub check: CheckArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub detach: crate::jobs::DetachArgs,
}

/// `psrp invoke --check`.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Check")]
pub struct CheckArgs {
    /// Before sending, check the command and the names and value types of
    /// its parameters against the endpoint's command metadata (cached per
    /// host, user and configuration under $XDG_CACHE_HOME/psrp/commands);
    /// a miss says which names exist and sends nothing (exit status 2 for
    /// an unknown command, 64 for a parameter).
    #[arg(long, env = "PSRP_CHECK", value_parser = clap::builder::BoolishValueParser::new())]
    pub check: bool,
    /// With --check: fetch the metadata again instead of using the cache.
    #[arg(long, requires = "check")]
    pub refresh: bool,
}

/// `psrp script`.
#[derive(Debug, Args)]
pub struct ScriptArgs {
    /// The script file, or `-` to read the script from stdin.
    pub file: PathBuf,
    #[command(flatten)]
    pub params: ParamArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `psrp doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON (for monitoring).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// `psrp clixml`.
#[derive(Debug, Args)]
pub struct ClixmlArgs {
    /// The CLIXML file, or `-` (the default) for stdin.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Parameters of the invoked command.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Parameters")]
pub struct ParamArgs {
    /// A string parameter, `-p Path=C:\Temp` (the value is taken verbatim).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub param: Vec<String>,
    /// A parameter with a JSON value: numbers, booleans, lists, objects (sent
    /// as hashtables), null: `--param-json Count=3`.
    #[arg(long = "param-json", value_name = "NAME=JSON")]
    pub param_json: Vec<String>,
    /// A switch parameter, `-s Force`.
    #[arg(short = 's', long = "switch", value_name = "NAME")]
    pub switch: Vec<String>,
    /// All parameters as one JSON object; null means a switch (as in the
    /// Airflow PSRP operator): `--params '{"Force": null, "Count": 3}'`.
    #[arg(long = "params", value_name = "JSON")]
    pub params: Option<String>,
    /// A parameter sent as a System.Security.SecureString (encrypted with the
    /// session's key), its value never on the command line:
    /// `--secure-param Password=env:DB_PASSWORD` takes it from a variable
    /// (removed from psrp's environment at start), `Password=stdin` from the
    /// first line of stdin (one such parameter; not with --password-stdin).
    /// The value is never printed or logged.
    #[arg(long = "secure-param", value_name = "NAME=env:VAR|NAME=stdin")]
    pub secure_param: Vec<String>,
    #[command(flatten)]
    pub answers: crate::prompts::AnswerArgs,
}

/// `--scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// HTTP (port 5985); NTLM/Kerberos/Negotiate encrypt every message.
    Http,
    /// HTTPS (port 5986).
    Https,
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// HTTP Basic (local accounts; HTTPS only unless --allow-unencrypted).
    Basic,
    /// NTLMv2.
    Ntlm,
    /// Kerberos (the ticket cache from kinit, or username + password).
    Kerberos,
    /// Kerberos when possible, else NTLM.
    Negotiate,
    /// A client certificate over HTTPS (--cert-file, --key-file), mapped to
    /// an account by the server.
    Certificate,
    /// CredSSP: hands your user name and PASSWORD to the server, which can
    /// then act as you on other hosts (second hop) until it forgets them.
    /// Only with hosts you trust; never chosen automatically.
    Credssp,
}

/// How to reach the host(s) and authenticate.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// Host name(s), comma separated: `-H a,b,c` (each may carry `:port`).
    #[arg(short = 'H', long = "host", env = "PSRP_HOST", value_name = "HOSTS")]
    pub host: Option<String>,
    /// A file with one host per line (`#` starts a comment).
    #[arg(long = "hosts-file", env = "PSRP_HOSTS_FILE", value_name = "PATH")]
    pub hosts_file: Option<PathBuf>,
    /// How many hosts at once (default 32, like Invoke-Command -ThrottleLimit).
    #[arg(long, env = "PSRP_THROTTLE", value_name = "N")]
    pub throttle: Option<usize>,
    /// Port (default 5985 for http, 5986 for https).
    #[arg(long, env = "PSRP_PORT")]
    pub port: Option<u16>,
    /// http or https (default http).
    #[arg(long, env = "PSRP_SCHEME", value_enum)]
    pub scheme: Option<Scheme>,
    /// URL path of the WinRM endpoint (default wsman).
    #[arg(long, env = "PSRP_PATH")]
    pub path: Option<String>,
    /// Authentication (default negotiate). credssp hands your password to
    /// the server: only use it with hosts you trust.
    #[arg(short = 'a', long, env = "PSRP_AUTH", value_enum)]
    pub auth: Option<AuthKind>,
    /// User name (DOMAIN\user, user@REALM). Omit for Kerberos with a ticket
    /// cache.
    #[arg(short = 'u', long, env = "PSRP_USERNAME")]
    pub username: Option<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Kerberos service principal (default HTTP/<host>).
    #[arg(long, env = "PSRP_SPN")]
    pub spn: Option<String>,
    /// Client certificate (PEM; intermediates may follow) for -a
    /// certificate over HTTPS.
    #[arg(long, env = "PSRP_CERT_FILE", value_name = "PATH")]
    pub cert_file: Option<PathBuf>,
    /// Private key of --cert-file (PEM; an ENCRYPTED PRIVATE KEY is decrypted
    /// with the password from PSRP_PASSWORD, --password-stdin or the
    /// profile's password_env).
    #[arg(long, env = "PSRP_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// PEM file of CA certificates to trust for HTTPS.
    #[arg(long, env = "PSRP_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// DANGEROUS: accept any HTTPS certificate (expired, self-signed, wrong
    /// host), so anyone on the path can read the session.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
    /// DANGEROUS: allow Basic over plain HTTP (password in clear text), for
    /// servers with AllowUnencrypted=true.
    #[arg(long)]
    pub allow_unencrypted: bool,
    /// With negotiate: fail (exit status 3, with the Kerberos error) instead
    /// of falling back to NTLM when Kerberos cannot be used. Without it the
    /// fallback happens with a warning on stderr.
    #[arg(
        long,
        env = "PSRP_NO_NTLM_FALLBACK",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_ntlm_fallback: bool,
    /// Kerberos delegation (kerberos, negotiate): hand your forwardable TGT
    /// to the server, so the remote session can reach other hosts as you
    /// (a second hop). The server can then act as you anywhere until the
    /// ticket expires: use it only with hosts you trust. Needs a forwardable
    /// ticket (kinit -f); fails with exit status 3 when none is forwarded.
    #[arg(
        long,
        env = "PSRP_DELEGATE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub delegate: bool,
    /// Session configuration (JEA endpoint), default Microsoft.PowerShell.
    #[arg(
        short = 'c',
        long,
        env = "PSRP_CONFIGURATION_NAME",
        value_name = "NAME"
    )]
    pub configuration_name: Option<String>,
    /// A command run in the same runspace before the main command, e.g.
    /// "Set-PSDebug -Trace 1" (repeatable; replaces the profile's list).
    #[arg(long = "session-init", value_name = "COMMAND")]
    pub session_init: Vec<String>,
    /// Time limit per host in seconds for connecting and running; then the
    /// pipeline is stopped and the shell deleted (exit status 2, or 3 while
    /// connecting).
    #[arg(long, env = "PSRP_TIMEOUT", value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// TCP and TLS connect timeout in seconds (default 30).
    #[arg(long, env = "PSRP_CONNECT_TIMEOUT", value_name = "SECONDS")]
    pub connect_timeout: Option<f64>,
    /// WS-Man OperationTimeout in seconds (default 20).
    #[arg(long, env = "PSRP_OPERATION_TIMEOUT", value_name = "SECONDS")]
    pub operation_timeout: Option<f64>,
    /// Retries on a new connection after the connection broke during a
    /// Receive, Send or Signal (reset, closed, timed out, cut, HTTP 5xx);
    /// 0 turns reconnection off (default 5).
    #[arg(long, env = "PSRP_RECONNECT_RETRIES", value_name = "N")]
    pub reconnect_retries: Option<u32>,
    /// Seconds before the first reconnection retry, doubled for each
    /// further one up to 30 (default 1).
    #[arg(long, env = "PSRP_RECONNECT_BACKOFF", value_name = "SECONDS")]
    pub reconnect_backoff: Option<f64>,
    /// Maximum WS-Man envelope size in bytes.
    #[arg(long, env = "PSRP_MAX_ENVELOPE_SIZE", value_name = "BYTES")]
    pub max_envelope_size: Option<u32>,
    /// Largest PSRP message accepted from the server (one output object or
    /// record), in bytes or with a K, M or G suffix (KiB, MiB, GiB; default
    /// 32M); partial messages may hold twice this. A larger one fails the
    /// pipeline (exit status 2).
    #[arg(long, env = "PSRP_MAX_MESSAGE_SIZE", value_name = "SIZE")]
    pub max_message_size: Option<String>,
    /// Locale for the remote session (default en-US).
    #[arg(long, env = "PSRP_LOCALE")]
    pub locale: Option<String>,
    /// Named profile from the config file.
    #[arg(short = 'P', long, env = "PSRP_PROFILE")]
    pub profile: Option<String>,
    /// Config file (default $XDG_CONFIG_HOME/psrp/config.toml).
    #[arg(long, env = "PSRP_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// One JSON array, written as objects arrive.
    #[default]
    Json,
    /// One JSON value per line.
    Ndjson,
    /// An <Objs> CLIXML document (for debugging; one host only).
    Clixml,
}

/// `--log-level`: the least severe stream shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Default)]
pub enum LogLevel {
    /// Nothing but psrp's own errors.
    None,
    /// Error records.
    Error,
    /// And warnings.
    Warning,
    /// And information records (Write-Information, Write-Host).
    Information,
    /// And progress.
    Progress,
    /// And verbose records.
    Verbose,
    /// Everything, including debug records (the default).
    #[default]
    Debug,
}

/// Where and how results and streams are written.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output format on stdout.
    #[arg(short = 'o', long, value_enum, default_value_t, env = "PSRP_OUTPUT")]
    pub output: OutputFormat,
    /// Nesting depth of objects in JSON; deeper objects become their ToString.
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    /// Write enums as numbers instead of names.
    #[arg(long)]
    pub enums_as_numbers: bool,
    /// Least severe stream shown on stderr (error, warning, information,
    /// progress, verbose, debug; none hides all).
    #[arg(short = 'l', long, value_enum, default_value_t, env = "PSRP_LOG_LEVEL")]
    pub log_level: LogLevel,
}
