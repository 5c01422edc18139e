//! SMTP command line parser (RFC 5321 §4.1, lenient where clients commonly are).
//! Errors come back as the reply to send.
use super::Reply;

/// Longest reverse or forward path, brackets included (RFC 5321 §4.5.3.1.3).
const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        /// Without brackets and source route; empty for `<>`.
        path: String,
        size: Option<u64>,
        body: Option<Body>,
    },
    Rcpt {
        path: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help,
    StartTls,
    Auth {
        /// Upper case.
        mechanism: String,
        initial: Option<String>,
    },
}

fn syntax(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text)
}

/// Parse one command line (without CRLF).
pub fn parse(line: &str) -> Result<Command, Reply> {
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, rest) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i + 1..].trim_start_matches([' ', '\t'])),
        None => (line, ""),
    };
    let no_args = |cmd: Command, name: &str| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(syntax(&format!("Syntax: {name} takes no parameters")))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Ok(Command::Ehlo(parse_helo(rest, "EHLO")?)),
        "HELO" => Ok(Command::Helo(parse_helo(rest, "HELO")?)),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data, "DATA"),
        // RFC 5321 lets RSET/NOOP/HELP carry a string; RSET may not.
        "RSET" => no_args(Command::Rset, "RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls, "STARTTLS"),
        "VRFY" if rest.is_empty() => Err(syntax("Syntax: VRFY <address>")),
        "VRFY" => Ok(Command::Vrfy(rest.to_string())),
        "EXPN" if rest.is_empty() => Err(syntax("Syntax: EXPN <list>")),
        "EXPN" => Ok(Command::Expn(rest.to_string())),
        "AUTH" => parse_auth(rest),
        _ => Err(Reply::new(500, "5.5.2", "Command not recognized")),
    }
}

/// EHLO/HELO argument: a domain or an address literal. Kept strict because it ends
/// up in the Received header.
fn parse_helo(arg: &str, name: &str) -> Result<String, Reply> {
    let usage = || syntax(&format!("Syntax: {name} <domain or address literal>"));
    // Some clients add trailing words; the first one is the identity.
    let id = arg.split([' ', '\t']).next().unwrap_or("");
    if id.is_empty() || id.len() > 255 {
        return Err(usage());
    }
    let ok = if let Some(lit) = id.strip_prefix('[') {
        lit.strip_suffix(']').is_some_and(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":.-".contains(&b))
        })
    } else {
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    };
    if ok {
        Ok(id.to_string())
    } else {
        Err(usage())
    }
}

/// `FROM:` / `TO:` prefix, case-insensitive, spaces allowed after the colon.
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword) {
        Some(rest[keyword.len()..].trim_start_matches([' ', '\t']))
    } else {
        None
    }
}

fn parse_mail(rest: &str) -> Result<Command, Reply> {
    let arg = strip_keyword(rest, "FROM:").ok_or_else(|| syntax("Syntax: MAIL FROM:<address>"))?;
    let (path, params) = parse_path(arg, true).map_err(|e| match e {
        PathError::Syntax => syntax("Syntax: MAIL FROM:<address>"),
        PathError::Mailbox => Reply::new(501, "5.1.7", "Bad sender address syntax"),
        PathError::TooLong => Reply::new(501, "5.1.7", "Sender address too long"),
    })?;
    let mut size = None;
    let mut body = None;
    for param in params.split([' ', '\t']).filter(|p| !p.is_empty()) {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (param, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) if !v.is_empty() && v.len() <= 20 => {
                size = Some(
                    v.parse::<u64>()
                        .map_err(|_| syntax("Syntax: SIZE=<decimal number>"))?,
                );
            }
            ("SIZE", _) => return Err(syntax("Syntax: SIZE=<decimal number>")),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => body = Some(Body::SevenBit),
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                body = Some(Body::EightBitMime)
            }
            ("BODY", _) => return Err(syntax("Syntax: BODY=7BIT or BODY=8BITMIME")),
            _ => return Err(Reply::new(555, "5.5.4", "Unsupported MAIL parameter")),
        }
    }
    Ok(Command::Mail { path, size, body })
}

fn parse_rcpt(rest: &str) -> Result<Command, Reply> {
    let arg = strip_keyword(rest, "TO:").ok_or_else(|| syntax("Syntax: RCPT TO:<address>"))?;
    let (path, params) = parse_path(arg, false).map_err(|e| match e {
        PathError::Syntax => syntax("Syntax: RCPT TO:<address>"),
        PathError::Mailbox => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
        PathError::TooLong => Reply::new(501, "5.1.3", "Recipient address too long"),
    })?;
    if !params.trim().is_empty() {
        return Err(Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
    }
    Ok(Command::Rcpt { path })
}

fn parse_auth(rest: &str) -> Result<Command, Reply> {
    let mut parts = rest.split([' ', '\t']).filter(|p| !p.is_empty());
    let mechanism = parts
        .next()
        .ok_or_else(|| syntax("Syntax: AUTH <mechanism> [initial-response]"))?
        .to_ascii_uppercase();
    let initial = parts.next().map(str::to_string);
    if parts.next().is_some() {
        return Err(syntax("Syntax: AUTH <mechanism> [initial-response]"));
    }
    Ok(Command::Auth { mechanism, initial })
}

#[derive(Debug, PartialEq, Eq)]
pub enum PathError {
    /// No brackets, unterminated, junk.
    Syntax,
    /// Brackets fine, the mailbox inside is not an address.
    Mailbox,
    TooLong,
}

/// Parse `<[@route,@route:]mailbox>` at the start of `s`; returns the mailbox
/// (source route dropped, RFC 5321 §4.1.2 / appendix C) and what follows the `>`.
pub fn parse_path(s: &str, allow_null: bool) -> Result<(String, &str), PathError> {
    let inner_start = s.strip_prefix('<').ok_or(PathError::Syntax)?;
    // Find the closing bracket outside a quoted local part.
    let mut in_quotes = false;
    let mut escaped = false;
    let mut close = None;
    for (i, c) in inner_start.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == '>' && !in_quotes {
            close = Some(i);
            break;
        }
    }
    let close = close.ok_or(PathError::Syntax)?;
    let mut inner = &inner_start[..close];
    let after = &inner_start[close + 1..];
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return Err(PathError::Syntax);
    }
    if close + 2 > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if inner.starts_with('@') {
        let colon = inner.find(':').ok_or(PathError::Syntax)?;
        inner = &inner[colon + 1..];
    }
    if inner.is_empty() {
        return if allow_null {
            Ok((String::new(), after))
        } else {
            Err(PathError::Mailbox)
        };
    }
    // RFC 5321 §4.1.1.3: "Postmaster" without domain must be accepted as recipient.
    if !allow_null && inner.eq_ignore_ascii_case("postmaster") {
        return Ok((inner.to_string(), after));
    }
    if !valid_mailbox(inner) {
        return Err(PathError::Mailbox);
    }
    Ok((inner.to_string(), after))
}

/// local@domain with a dot-atom or quoted local part and a domain or address
/// literal. UTF-8 is let through (the backend decides about it).
fn valid_mailbox(m: &str) -> bool {
    let Some(at) = m.rfind('@') else {
        return false;
    };
    let (local, domain) = (&m[..at], &m[at + 1..]);
    if local.is_empty() || domain.is_empty() || local.len() > 64 || domain.len() > 255 {
        return false;
    }
    let local_ok = if local.starts_with('"') {
        local.len() >= 2
            && local.ends_with('"')
            && !local.chars().any(|c| c.is_control() && c != '\t')
    } else {
        !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| {
                !c.is_ascii() || c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
            })
    };
    let domain_ok = if let Some(lit) = domain.strip_prefix('[') {
        lit.strip_suffix(']').is_some_and(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":.-".contains(c))
        })
    } else {
        !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-'])
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| !c.is_ascii() || c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("<a@b.it>", false), Ok(("a@b.it".into(), "")));
        assert_eq!(parse_path("<>", true), Ok((String::new(), "")));
        assert_eq!(parse_path("<>", false), Err(PathError::Mailbox));
        assert_eq!(
            parse_path("<@x.it,@y.it:a@b.it> SIZE=1", true),
            Ok(("a@b.it".into(), " SIZE=1"))
        );
        assert_eq!(parse_path("a@b.it", true), Err(PathError::Syntax));
        assert_eq!(parse_path("<a@b.it", true), Err(PathError::Syntax));
        assert_eq!(parse_path("<a b@c.it>", true), Err(PathError::Mailbox));
        assert_eq!(
            parse_path("<\"a>b\"@c.it>", true),
            Ok(("\"a>b\"@c.it".into(), ""))
        );
        assert_eq!(
            parse_path("<Postmaster>", false),
            Ok(("Postmaster".into(), ""))
        );
        assert_eq!(parse_path("<a@b.it>x", true), Err(PathError::Syntax));
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse("mail from: <a@b.it> size=10 BODY=8bitmime"),
            Ok(Command::Mail {
                path: "a@b.it".into(),
                size: Some(10),
                body: Some(Body::EightBitMime)
            })
        );
        assert_eq!(parse("MAIL FROM:<a@b.it> FOO=1").unwrap_err().code, 555);
        assert_eq!(parse("MAIL FROM:<a@b.it> SIZE=x").unwrap_err().code, 501);
        assert_eq!(parse("MAIL TO:<a@b.it>").unwrap_err().code, 501);
        assert_eq!(
            parse("RCPT TO:<a@b.it>"),
            Ok(Command::Rcpt {
                path: "a@b.it".into()
            })
        );
        assert_eq!(parse("EHLO").unwrap_err().code, 501);
        assert_eq!(parse("EHLO x\r\nRSET").unwrap_err().code, 501);
        assert_eq!(
            parse("EHLO [127.0.0.1]"),
            Ok(Command::Ehlo("[127.0.0.1]".into()))
        );
        assert_eq!(parse("FOO").unwrap_err().code, 500);
        assert_eq!(
            parse("auth plain AGFAYgBj"),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGFAYgBj".into())
            })
        );
        assert_eq!(parse("DATA x").unwrap_err().code, 501);
    }
}
