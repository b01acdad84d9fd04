//! What a failed connection attempt is reported as: credentials refused, TLS that did
//! not work out, a server that could not be reached, each with a hint where the client's
//! own error does not tell what to do.

use async_nats::ConnectErrorKind as Kind;

use super::{Auth, NatsConfig, invalid};
use crate::ConnectError;

/// The error for `source`, the client's, from connecting with `config` to `servers`
/// (their URLs without credentials); `reason` is the client's text, without them.
pub(super) fn connect_error(
    config: &NatsConfig,
    source: &async_nats::ConnectError,
    servers: String,
    reason: String,
) -> ConnectError {
    let tls_asked = config.tls_required
        || config.tls_ca.is_some()
        || config.tls_client.is_some()
        || config.servers.iter().any(|url| url.starts_with("tls://"));
    // A client certificate may be what signs in (a server that maps certificates to
    // users).
    let no_credentials = matches!(config.auth, Auth::None)
        && config.tls_client.is_none()
        && !config.servers.iter().any(|u| super::user_info(u).is_some());
    let tls = |reason| ConnectError::Tls {
        servers: servers.clone(),
        reason,
    };
    match source.kind() {
        Kind::Authentication | Kind::AuthorizationViolation if no_credentials => {
            ConnectError::Refused {
                reason: format!(
                    "{reason} (none were given, and the server asks for some: set \
                     ORCH_NATS_USER and ORCH_NATS_PASSWORD, or another ORCH_NATS_* way to \
                     sign in)"
                ),
                servers,
            }
        }
        Kind::Authentication | Kind::AuthorizationViolation => {
            ConnectError::Refused { servers, reason }
        }
        Kind::Tls if reason.contains("could not add certificate or key") => {
            let files = match &config.tls_client {
                Some((cert, key)) => format!(" ({} and {})", cert.display(), key.display()),
                None => String::new(),
            };
            tls(format!(
                "{reason}: the client certificate and key{files} do not go together, or \
                 one is not PEM"
            ))
        }
        Kind::Tls => tls(reason),
        // The server refused the client's certificate, or wanted one.
        Kind::Io if reason.contains("alert") && config.tls_client.is_none() => tls(format!(
            "{reason} (the server refused the handshake: does it ask for a client \
             certificate? set ORCH_NATS_TLS_CERT and ORCH_NATS_TLS_KEY)"
        )),
        Kind::Io if reason.contains("alert") => tls(format!(
            "{reason} (the server refused the handshake: does it trust the client \
             certificate, and is the certificate still valid?)"
        )),
        // A certificate the client rejects surfaces as an I/O error.
        Kind::Io if reason.contains("certificate") || reason.contains("tls") => tls(reason),
        // A server that speaks no TLS answers the handshake with what TLS cannot read.
        Kind::Io if tls_asked && reason.contains("corrupt message") => tls(format!(
            "{reason} (TLS is required: does the server offer it?)"
        )),
        Kind::ServerParse => invalid(reason),
        _ => ConnectError::Unreachable { servers, reason },
    }
}
