//! Keeping a connection string's password out of error messages.

use crate::JournalError;

/// The password in a connection string, found even when the string does not parse.
pub(super) fn secret_in(config: &str) -> Option<String> {
    if let Ok(parsed) = config.parse::<tokio_postgres::Config>() {
        return parsed
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned());
    }
    if let Some(rest) = config.split_once("://").map(|(_, rest)| rest) {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let user_info = authority.rsplit_once('@').map(|(info, _)| info)?;
        return user_info.split_once(':').map(|(_, pw)| pw.to_owned());
    }
    let (_, after) = config.split_once("password")?;
    let value = after.trim_start().strip_prefix('=')?.trim_start();
    let value = match value.strip_prefix('\'') {
        Some(quoted) => quoted.split('\'').next().unwrap_or(""),
        None => value.split_whitespace().next().unwrap_or(""),
    };
    Some(value.to_owned())
}

pub(super) fn scrub(message: String, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() => message.replace(secret, "***"),
        _ => message,
    }
}

pub(super) fn pg_error(
    action: &'static str,
    error: &tokio_postgres::Error,
    secret: Option<&str>,
) -> JournalError {
    JournalError::Postgres {
        action,
        message: scrub(describe(error), secret),
    }
}

/// `error`'s text: the server's message and detail, or the client's error with its causes.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        }
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(&format!(": {cause_text}"));
                }
                source = cause.source();
            }
            text
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_in_every_form_of_connection_string() {
        let found = |c: &str| secret_in(c);
        assert_eq!(
            found("host=h user=u password=s3cret").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            found("host=h password='a b' user=u").as_deref(),
            Some("a b")
        );
        assert_eq!(
            found("postgresql://u:s3cret@h:5/db").as_deref(),
            Some("s3cret")
        );
        // Unparsable strings still give their password away to the scrubber.
        assert_eq!(
            found("host=h port=x password=s3cret").as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            found("postgresql://u:s3cret@h:notaport/db").as_deref(),
            Some("s3cret")
        );
        assert_eq!(found("host=h user=u"), None);
        assert_eq!(
            scrub("failed for s3cret".to_owned(), Some("s3cret")),
            "failed for ***"
        );
    }
}
