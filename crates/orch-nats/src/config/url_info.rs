//! The user information a server URL may carry (`nats://user:password@host`): found,
//! taken as credentials, and kept out of what is logged or shown.

use super::Auth;

/// `url` with any user information (`user:password@`) replaced by `<redacted>@`. The
/// user information ends at the last `@`: a password may hold a `/` or an `@` that was
/// not escaped.
pub(crate) fn redact_url(url: &str) -> String {
    replace_user_info(url, "<redacted>@")
}

/// `url` with its user information and the `@` after it replaced by `with`.
pub(super) fn replace_user_info(url: &str, with: &str) -> String {
    match user_info(url) {
        Some((start, info)) => format!("{}{with}{}", &url[..start], &url[start + info.len() + 1..]),
        None => url.to_owned(),
    }
}

/// Where `url`'s user information starts, and the user information (up to the last `@`).
/// An `@` only before the scheme (`user:password@nats://host`, written the wrong way
/// round) makes everything before it user information, with no scheme before it: so
/// that it is never shown.
pub(super) fn user_info(url: &str) -> Option<(usize, &str)> {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => Some((start, &url[start..start + at])),
        None => url[..start].rfind('@').map(|at| (0, &url[..at])),
    }
}

/// How a URL's user information (`user:password` or a token) signs in.
pub(super) fn auth_in_url(info: &str) -> Auth {
    match info.split_once(':') {
        Some((user, password)) => Auth::user_password(user, password),
        None => Auth::token(info),
    }
}

/// `text` with every server URL's user information redacted.
pub(super) fn redact_all(text: &str, servers: &[String]) -> String {
    let mut text = text.to_owned();
    for (_, info) in servers.iter().filter_map(|url| user_info(url)) {
        if !info.is_empty() {
            text = text.replace(info, "<redacted>");
        }
    }
    text
}
