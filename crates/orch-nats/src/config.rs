//! [`NatsConfig`]: where the NATS servers are and how to authenticate to them, from code
//! or the environment; secrets never appear in `Debug` output or errors.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::ConnectError;

mod failure;
mod key_files;
mod url_info;

pub(crate) use url_info::redact_url;
use url_info::{auth_in_url, redact_all, replace_user_info, user_info};

/// How to reach and authenticate to NATS: the settings every connection of this crate
/// (coordinator, worker, bridge) takes.
///
/// Secrets (password, token, NKey seed) are kept out of `Debug` output and of every
/// error and log line, and so is a password or token written into a server URL
/// (`nats://user:password@host`): the first URL that has one signs in with it, unless
/// [`NatsConfig::auth`] is set, and no URL reaches the client with it.
///
/// ```
/// use orch_nats::{Auth, NatsConfig};
///
/// let config = NatsConfig::new("nats://127.0.0.1:4222")
///     .auth(Auth::user_password("worker", "s3cret"))
///     .tls_ca("/etc/nats/ca.pem");
/// let shown = format!("{config:?}");
/// assert!(shown.contains("worker") && !shown.contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct NatsConfig {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client tries them in turn.
    pub servers: Vec<String>,
    /// How to authenticate.
    pub auth: Auth,
    /// A CA certificate (PEM) to trust for the servers' TLS certificates; setting it
    /// requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify clients; setting
    /// it requires TLS.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Whether TLS is required even without a CA of our own (the system's roots).
    pub tls_required: bool,
    /// The name this connection shows in the server's monitoring.
    pub name: Option<String>,
    /// How long the first connection may take before it counts as unreachable.
    pub connect_timeout: Duration,
}

/// How a connection authenticates.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// A user name and password.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// A token.
    Token(Secret),
    /// An NKey seed (`SU...`): the client signs the server's challenge with it.
    NKey(Secret),
    /// A credentials file (`.creds`: a user JWT and its NKey seed), read as the
    /// connection is made: a regular file or a pipe of at most 1 MiB.
    CredentialsFile(PathBuf),
}

impl Auth {
    /// A user name and password.
    pub fn user_password(user: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::UserPassword {
            user: user.into(),
            password: Secret::new(password),
        }
    }

    /// A token.
    pub fn token(token: impl Into<String>) -> Self {
        Auth::Token(Secret::new(token))
    }

    /// An NKey seed.
    pub fn nkey(seed: impl Into<String>) -> Self {
        Auth::NKey(Secret::new(seed))
    }

    /// A credentials file, read as the connection is made: a regular file or a pipe
    /// (`<(command)`) of at most 1 MiB, else [`NatsConfig::connect`] refuses it as
    /// [`ConnectError::Config`].
    pub fn credentials_file(path: impl Into<PathBuf>) -> Self {
        Auth::CredentialsFile(path.into())
    }
}

/// A secret string: readable with [`Secret::expose`], shown as `<redacted>` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The environment variables [`NatsConfig::from_env`] reads. A TLS variable set to
/// nothing is refused, not taken for unset (that would mean no TLS); another one set to
/// nothing is unset (a user's empty password is the same as none).
pub mod env {
    /// Server URLs, separated by commas (default `nats://127.0.0.1:4222`). One with
    /// credentials in it needs its scheme (`nats://user:password@host`), and its
    /// password cannot hold a `,`: give such a password in [`PASSWORD`] instead. The
    /// user and password are taken as written, `%` escapes included (`p%40ss` is those
    /// six characters, not `p@ss`): a `/` or `@` in them needs no escape. Read
    /// by [`NatsConfig::from_env`](super::NatsConfig::from_env), such credentials
    /// become its [`auth`](super::NatsConfig::auth), so they stay when the servers are
    /// replaced afterwards (and credentials in URLs set then are not used: a set `auth`
    /// comes first).
    pub const URL: &str = "ORCH_NATS_URL";
    /// A user name, with [`PASSWORD`] (alone, the user signs in with an empty password).
    pub const USER: &str = "ORCH_NATS_USER";
    /// The user's password.
    pub const PASSWORD: &str = "ORCH_NATS_PASSWORD";
    /// A token.
    pub const TOKEN: &str = "ORCH_NATS_TOKEN";
    /// An NKey seed.
    pub const NKEY_SEED: &str = "ORCH_NATS_NKEY_SEED";
    /// The path of a credentials file.
    pub const CREDS: &str = "ORCH_NATS_CREDS";
    /// The path of a CA certificate (PEM) for TLS.
    pub const TLS_CA: &str = "ORCH_NATS_TLS_CA";
    /// The path of a client certificate (PEM), with [`TLS_KEY`].
    pub const TLS_CERT: &str = "ORCH_NATS_TLS_CERT";
    /// The path of the client certificate's key (PEM).
    pub const TLS_KEY: &str = "ORCH_NATS_TLS_KEY";
    /// The connection's name.
    pub const NAME: &str = "ORCH_NATS_NAME";
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self::new("nats://127.0.0.1:4222")
    }
}

impl NatsConfig {
    /// A server URL, no credentials, no TLS of our own.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            auth: Auth::None,
            tls_ca: None,
            tls_client: None,
            tls_required: false,
            name: None,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Sets how to authenticate.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Trusts the CA certificate (PEM) at `path`, and requires TLS. The client reads the
    /// file at every connection: it must be a regular file of at most 1 MiB, else
    /// [`NatsConfig::connect`] refuses it as [`ConnectError::Config`].
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self.tls_required = true;
        self
    }

    /// Presents a client certificate and its key (PEM), and requires TLS. Both must be
    /// regular files of at most 1 MiB, as for [`NatsConfig::tls_ca`].
    pub fn tls_client(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_client = Some((cert.into(), key.into()));
        self.tls_required = true;
        self
    }

    /// Names the connection in the server's monitoring.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The settings in the process's environment (see [`env`](mod@env) for the variables).
    ///
    /// A variable whose value is not UTF-8 is refused, naming it, rather than taken for
    /// unset (a CA taken for unset would mean no TLS).
    pub fn from_env() -> Result<Self, ConnectError> {
        Self::from_os_lookup(|name| std::env::var_os(name))
    }

    /// [`NatsConfig::from_lookup`] from values as the system gives them.
    fn from_os_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConnectError> {
        // The first variable read whose value is not UTF-8.
        let not_utf8 = std::cell::Cell::new(None);
        let config = Self::from_lookup(|name| match lookup(name)?.into_string() {
            Ok(value) => Some(value),
            Err(_) => {
                let first = not_utf8.take().unwrap_or_else(|| name.to_owned());
                not_utf8.set(Some(first));
                None
            }
        });
        match not_utf8.take() {
            Some(name) => Err(invalid(format!("{name} is not valid UTF-8"))),
            None => config,
        }
    }

    /// The settings that `lookup` gives for the variables of [`env`](mod@env): one source of
    /// credentials at most (credentials in [`env::URL`] count as one, and must be the
    /// same in every URL); a password needs a user; a client certificate needs its key.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectError> {
        let get = |name: &str| lookup(name).filter(|value| !value.is_empty());
        // A TLS setting set empty (`${CA}` with CA unset) is refused, not taken for
        // unset: an empty CA would mean no TLS, and credentials sent in clear.
        let set = |name: &str| match lookup(name) {
            Some(value) if value.is_empty() => Err(invalid(format!(
                "{name} is set but empty: give it a value, or unset it"
            ))),
            value => Ok(value),
        };
        let mut config = NatsConfig::default();
        if let Some(urls) = get(env::URL) {
            // An empty entry (`a,`, `a,,b`) names no server.
            config.servers = (urls.split(',').map(str::trim))
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect();
            if config.servers.is_empty() {
                return Err(invalid(format!("{} names no server: `{urls}`", env::URL)));
            }
            // Credentials with no scheme before them, which is also what a password with
            // a `,` in it looks like once split: refused without showing any of it.
            let unschemed = (config.servers.iter().enumerate())
                .find(|(_, url)| user_info(url).is_some_and(|(start, _)| start == 0));
            if let Some((entry, _)) = unschemed {
                return Err(invalid(format!(
                    "{}: entry {} has credentials but no scheme: write it \
                     nats://user:password@host:port (a password cannot hold a `,` there: \
                     give it in {})",
                    env::URL,
                    entry + 1,
                    env::PASSWORD
                )));
            }
        }
        let mut sources = Vec::new();
        let mut in_urls = config.servers.iter().filter_map(|url| user_info(url));
        if let Some((_, first)) = in_urls.next() {
            // One connection signs in one way: the first URL's would be used for all.
            if in_urls.any(|(_, info)| info != first) {
                return Err(invalid(format!(
                    "{} holds different credentials in different URLs; a connection signs \
                     in one way: give them once",
                    env::URL
                )));
            }
            sources.push(URL_CREDENTIALS);
            // Kept as the connection's own, so that they stay when the servers are
            // replaced (`orch worker --nats`).
            config.auth = auth_in_url(first);
        }
        match (get(env::USER), get(env::PASSWORD)) {
            (Some(user), Some(password)) => {
                sources.push(env::USER);
                config.auth = Auth::user_password(user, password);
            }
            (None, Some(_)) => {
                return Err(invalid(format!(
                    "{} is set without {}",
                    env::PASSWORD,
                    env::USER
                )));
            }
            (Some(user), None) => {
                sources.push(env::USER);
                config.auth = Auth::user_password(user, "");
            }
            (None, None) => {}
        }
        if let Some(token) = get(env::TOKEN) {
            sources.push(env::TOKEN);
            config.auth = Auth::token(token);
        }
        if let Some(seed) = get(env::NKEY_SEED) {
            sources.push(env::NKEY_SEED);
            config.auth = Auth::nkey(seed);
        }
        if let Some(path) = get(env::CREDS) {
            sources.push(env::CREDS);
            config.auth = Auth::credentials_file(path);
        }
        if sources.len() > 1 {
            return Err(invalid(format!(
                "more than one way to authenticate is set ({}); set one",
                sources.join(", ")
            )));
        }
        if let Some(ca) = set(env::TLS_CA)? {
            config = config.tls_ca(ca);
        }
        match (set(env::TLS_CERT)?, set(env::TLS_KEY)?) {
            (Some(cert), Some(key)) => config = config.tls_client(cert, key),
            (None, None) => {}
            _ => {
                return Err(invalid(format!(
                    "{} and {} go together",
                    env::TLS_CERT,
                    env::TLS_KEY
                )));
            }
        }
        config.name = get(env::NAME);
        Ok(config)
    }

    /// Whether `url` carries credentials (`scheme://user:password@host`), which
    /// [`NatsConfig::connect`] takes out of it and signs in with. (Everything up to its
    /// last `@` counts: a password may hold a `/` or an `@` that was not escaped.)
    pub fn url_has_credentials(url: &str) -> bool {
        user_info(url).is_some()
    }

    /// Connects, failing with a typed error when no server answers, the credentials or
    /// TLS are refused. Once connected, the client reconnects by itself for as long as
    /// it lives.
    pub async fn connect(&self) -> Result<async_nats::Client, ConnectError> {
        if self.servers.is_empty() {
            return Err(invalid("no server URL is given".to_owned()));
        }
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(self.connect_timeout)
            .max_reconnects(None)
            .event_callback(|event| async move { log_event(&event) });
        if let Some(name) = &self.name {
            options = options.name(name);
        }
        // Credentials written into a URL are taken out of it (the client would log the
        // URL as it is) and used as the connection's own, unless it has others.
        let in_url = self
            .servers
            .iter()
            .find_map(|url| user_info(url).map(|(_, info)| info));
        let from_url = match (&self.auth, in_url) {
            (Auth::None, Some(info)) => Some(auth_in_url(info)),
            _ => None,
        };
        options = match from_url.as_ref().unwrap_or(&self.auth) {
            Auth::None => options,
            Auth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.expose().to_owned())
            }
            Auth::Token(token) => options.token(token.expose().to_owned()),
            Auth::NKey(seed) => options.nkey(key_files::nkey_seed(seed.expose())?),
            Auth::CredentialsFile(path) => {
                let text = key_files::read_credentials(path).await?;
                options.credentials(&text).map_err(|e| {
                    invalid(format!(
                        "cannot read the credentials file {}: {e}",
                        path.display()
                    ))
                })?
            }
        };
        if let Some(ca) = &self.tls_ca {
            key_files::check_tls("the TLS CA certificate", ca, key_files::CERTIFICATE)?;
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            key_files::check_tls("the TLS client certificate", cert, key_files::CERTIFICATE)?;
            key_files::check_tls("the TLS client key", key, key_files::PRIVATE_KEY)?;
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        // Set through the fields as through the builder, a CA or client certificate of
        // our own means TLS: never a plain connection to a server that does not ask.
        let tls = self.tls_required || self.tls_ca.is_some() || self.tls_client.is_some();
        if tls {
            options = options.require_tls(true);
        }
        let servers: Vec<String> = self.servers.iter().map(|url| redact_url(url)).collect();
        let servers = servers.join(", ");
        let urls: Vec<async_nats::ServerAddr> = self
            .servers
            .iter()
            .map(|url| {
                replace_user_info(url, "").parse().map_err(|e| {
                    invalid(format!(
                        "`{}` is not a NATS server URL: {e}",
                        redact_url(url)
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        options.connect(urls).await.map_err(|source| {
            let reason = redact_all(&source.to_string(), &self.servers);
            failure::connect_error(self, &source, servers, reason)
        })
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let servers: Vec<String> = self.servers.iter().map(|url| redact_url(url)).collect();
        f.debug_struct("NatsConfig")
            .field("servers", &servers)
            .field("auth", &self.auth)
            .field("tls_ca", &self.tls_ca)
            .field("tls_client", &self.tls_client)
            .field("tls_required", &self.tls_required)
            .field("name", &self.name)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Logs what the connection reports: lost and restored connections, and the server's
/// errors (a permissions violation names the subject it refused).
fn log_event(event: &async_nats::Event) {
    use async_nats::Event;
    match event {
        Event::Connected => tracing::info!("connected to NATS"),
        Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
        Event::ServerError(error) => tracing::error!(%error, "the NATS server reported an error"),
        // The client was drained, dropped or closed: the normal end.
        Event::Draining => tracing::debug!("the NATS connection is draining"),
        Event::Closed => tracing::debug!("the NATS connection is closed"),
        other => tracing::warn!(event = %other, "NATS connection event"),
    }
}

/// How credentials in [`env::URL`] are named among the sources of credentials.
const URL_CREDENTIALS: &str = "credentials in ORCH_NATS_URL";

fn invalid(reason: String) -> ConnectError {
    ConnectError::Config(reason)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<NatsConfig, ConnectError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        NatsConfig::from_lookup(|name| vars.get(name).cloned())
    }

    /// A value that is not UTF-8 is refused naming its variable, not taken for unset
    /// (which for the CA would mean no TLS).
    #[test]
    fn a_variable_that_is_not_utf8_is_refused_naming_it() {
        use std::os::unix::ffi::OsStringExt as _;
        let lookup = |name: &str| match name {
            env::URL => Some(OsString::from("nats://a:4222")),
            env::TLS_CA => Some(OsString::from_vec(b"/etc/ca-\xe9.pem".to_vec())),
            _ => None,
        };
        let error = NatsConfig::from_os_lookup(lookup).expect_err("refused");
        assert!(matches!(&error, ConnectError::Config(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            invalid("ORCH_NATS_TLS_CA is not valid UTF-8".to_owned()).to_string()
        );
        let valid = |name: &str| (name == env::TLS_CA).then(|| OsString::from("/ca.pem"));
        let config = NatsConfig::from_os_lookup(valid).expect("valid");
        assert_eq!(config.tls_ca, Some(PathBuf::from("/ca.pem")));
    }

    /// A TLS variable set to nothing is refused, naming it: taken for unset, an empty CA
    /// would connect without TLS, sending the password in clear.
    #[test]
    fn a_tls_variable_set_empty_is_refused_naming_it() {
        for name in [env::TLS_CA, env::TLS_CERT, env::TLS_KEY] {
            let error = from(&[(env::URL, "nats://a:4222"), (name, "")]).expect_err(name);
            assert!(matches!(&error, ConnectError::Config(_)), "{error:?}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("{name} is set but empty")),
                "{error}"
            );
        }
        // The servers and the name may be left empty: the defaults apply.
        let config = from(&[(env::URL, ""), (env::NAME, "")]).expect("valid");
        assert_eq!(config.servers, NatsConfig::default().servers);
        // A password may be empty.
        let config = from(&[(env::USER, "u"), (env::PASSWORD, "")]).expect("valid");
        assert!(
            matches!(&config.auth, Auth::UserPassword { user, password } if user == "u" && password.expose().is_empty())
        );
    }

    #[test]
    fn the_environment_gives_servers_credentials_and_tls() {
        let config = from(&[
            (env::URL, "nats://a:4222, nats://b:4222"),
            (env::USER, "worker"),
            (env::PASSWORD, "pw"),
            (env::TLS_CA, "/ca.pem"),
        ])
        .expect("valid");
        assert_eq!(config.servers, ["nats://a:4222", "nats://b:4222"]);
        assert!(
            matches!(&config.auth, Auth::UserPassword { user, password } if user == "worker" && password.expose() == "pw")
        );
        assert!(config.tls_required);
        // An empty entry is left out; a list of nothing but commas names no server.
        let trailing = from(&[(env::URL, "nats://a:4222,")]).expect("valid");
        assert_eq!(trailing.servers, ["nats://a:4222"]);
        let none = from(&[(env::URL, " , ")]).expect_err("no server");
        assert!(
            none.to_string().contains("ORCH_NATS_URL names no server"),
            "{none}"
        );
        let token = from(&[(env::TOKEN, "t0k3n")]).expect("valid");
        assert!(matches!(&token.auth, Auth::Token(t) if t.expose() == "t0k3n"));
        // A password with a `,` in a URL is split: refused, showing none of it.
        let split = from(&[(env::URL, "nats://u:pa55,w0rd@127.0.0.1:4222")]).expect_err("split");
        let shown = format!("{split} {split:?}");
        assert!(
            shown.contains("entry 2 has credentials but no scheme"),
            "{shown}"
        );
        let first = from(&[(env::URL, "u:p@127.0.0.1:4222")]).expect_err("no scheme");
        assert!(
            first
                .to_string()
                .contains("entry 1 has credentials but no scheme")
        );
        // Credentials written before the scheme: not a URL with credentials either.
        let before = from(&[(env::URL, "u:s3cr3t@nats://127.0.0.1:4222")]).expect_err("before");
        let before = format!("{before} {before:?}");
        assert!(
            before.contains("entry 1 has credentials but no scheme"),
            "{before}"
        );
        assert!(!before.contains("s3cr3t"), "{before}");
        assert!(
            !shown.contains("pa55") && !shown.contains("w0rd"),
            "{shown}"
        );
        let two = "nats://u:p@a:4222,tls://u:p@b:4222,nats://c:4222";
        assert_eq!(from(&[(env::URL, two)]).expect("valid").servers.len(), 3);
    }

    #[test]
    fn conflicting_or_incomplete_settings_are_refused_by_name() {
        let both = from(&[(env::TOKEN, "t"), (env::CREDS, "/x.creds")]).expect_err("two sources");
        assert!(
            both.to_string()
                .contains("ORCH_NATS_TOKEN, ORCH_NATS_CREDS"),
            "{both}"
        );
        let password = from(&[(env::PASSWORD, "pw")]).expect_err("no user");
        assert!(
            password.to_string().contains("ORCH_NATS_USER"),
            "{password}"
        );
        // Credentials in a URL are one source: with a token, one would be dropped.
        let url_and_token = from(&[(env::URL, "nats://u:hunter2@h:4222"), (env::TOKEN, "t")])
            .expect_err("two sources");
        let shown = format!("{url_and_token} {url_and_token:?}");
        assert!(
            shown.contains("(credentials in ORCH_NATS_URL, ORCH_NATS_TOKEN)"),
            "{shown}"
        );
        // Different ones in two URLs: only the first would be used.
        let different = from(&[(env::URL, "nats://u:hunter2@a:4222,nats://v:hunter3@b:4222")])
            .expect_err("different credentials");
        let shown = format!("{different} {different:?}");
        assert!(
            shown.contains("ORCH_NATS_URL holds different credentials in different URLs"),
            "{shown}"
        );
        assert!(!shown.contains("hunter"), "{shown}");
        let cert = from(&[(env::TLS_CERT, "/c.pem")]).expect_err("no key");
        assert!(cert.to_string().contains("ORCH_NATS_TLS_KEY"), "{cert}");
    }

    #[test]
    fn urls_lose_their_user_information() {
        assert_eq!(
            redact_url("nats://u:pw@host:4222"),
            "nats://<redacted>@host:4222"
        );
        assert_eq!(redact_url("tls://host:4222"), "tls://host:4222");
        assert!(NatsConfig::url_has_credentials("nats://u:p@127.0.0.1:4222"));
        assert!(NatsConfig::url_has_credentials("tls://token@host"));
        assert!(NatsConfig::url_has_credentials("nats://u:pa/ss@host"));
        assert!(!NatsConfig::url_has_credentials("nats://127.0.0.1:4222"));
        assert!(!NatsConfig::url_has_credentials("host"));
        assert_eq!(replace_user_info("nats://u:p@ss@host", ""), "nats://host");
        assert_eq!(redact_url("u:p@host"), "<redacted>@host");
        assert_eq!(redact_url("u:p@nats://host"), "<redacted>@nats://host");
        let shown = format!("{:?}", NatsConfig::new("u:hunter2@nats://h:1"));
        assert!(!shown.contains("hunter2"), "{shown}");
        // Passwords with a `/` or an `@` not escaped.
        assert_eq!(
            redact_url("nats://u:ab/cd@host:4222"),
            "nats://<redacted>@host:4222"
        );
        assert_eq!(redact_url("nats://u:p@ss@host"), "nats://<redacted>@host");
        let servers = ["nats://u:p@ss@host".to_owned()];
        assert_eq!(
            redact_all("cannot reach u:p@ss@host", &servers),
            "cannot reach <redacted>@host"
        );
        let shown = format!("{:?}", NatsConfig::new("nats://u:hunter2@h:1"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        for auth in [
            Auth::user_password("u", "hunter2"),
            Auth::token("hunter2"),
            Auth::nkey("hunter2"),
        ] {
            let shown = format!("{:?}", NatsConfig::default().auth(auth));
            assert!(
                !shown.contains("hunter2") && shown.contains("<redacted>"),
                "{shown}"
            );
        }
    }
}
