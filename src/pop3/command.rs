//! POP3 command lines (RFC 1939 §3): a keyword, then arguments separated by spaces.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Capa,
    User(String),
    /// The rest of the line: RFC 1939 §7 lets a password contain spaces.
    Pass(String),
    Apop,
    Auth,
    Stls,
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u64),
    Dele(u32),
    Rset,
    Noop,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    #[error("unknown command")]
    Unknown,
    #[error("{0}")]
    Syntax(&'static str),
}

/// Parses one line without its CRLF.
pub(crate) fn parse(line: &[u8]) -> Result<Command, CommandError> {
    let (keyword, rest) = match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    if keyword.is_empty() || keyword.len() > 4 || !keyword.iter().all(u8::is_ascii_alphabetic) {
        return Err(CommandError::Unknown);
    }
    let rest =
        std::str::from_utf8(rest).map_err(|_| CommandError::Syntax("arguments are not UTF-8"))?;
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let none = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax("this command takes no arguments"))
        }
    };
    match keyword.to_ascii_uppercase().as_slice() {
        b"CAPA" => none(Command::Capa),
        b"USER" => match args.as_slice() {
            [name] => Ok(Command::User((*name).to_string())),
            _ => Err(CommandError::Syntax("usage: USER name")),
        },
        b"PASS" if !rest.is_empty() => Ok(Command::Pass(rest.to_string())),
        b"PASS" => Err(CommandError::Syntax("usage: PASS password")),
        b"APOP" => Ok(Command::Apop),
        b"AUTH" => Ok(Command::Auth),
        b"STLS" => Ok(Command::Stls),
        b"STAT" => none(Command::Stat),
        b"LIST" => optional_number(&args).map(Command::List),
        b"UIDL" => optional_number(&args).map(Command::Uidl),
        b"RETR" => one_number(&args).map(Command::Retr),
        b"DELE" => one_number(&args).map(Command::Dele),
        b"TOP" => match args.as_slice() {
            [n, k] => Ok(Command::Top(
                number(n)?,
                k.parse()
                    .map_err(|_| CommandError::Syntax("invalid number of lines"))?,
            )),
            _ => Err(CommandError::Syntax("usage: TOP msg lines")),
        },
        b"RSET" => none(Command::Rset),
        b"NOOP" => none(Command::Noop),
        b"QUIT" => none(Command::Quit),
        _ => Err(CommandError::Unknown),
    }
}

fn number(s: &str) -> Result<u32, CommandError> {
    // digits only: u32::from_str would take a leading '+'
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax("invalid message number"));
    }
    s.parse()
        .map_err(|_| CommandError::Syntax("invalid message number"))
}

fn one_number(args: &[&str]) -> Result<u32, CommandError> {
    match args {
        [n] => number(n),
        _ => Err(CommandError::Syntax("expected one message number")),
    }
}

fn optional_number(args: &[&str]) -> Result<Option<u32>, CommandError> {
    match args {
        [] => Ok(None),
        [n] => number(n).map(Some),
        _ => Err(CommandError::Syntax("expected at most one message number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
        assert_eq!(parse(b"USER a@b.it"), Ok(Command::User("a@b.it".into())));
        assert_eq!(
            parse(b"PASS  two words "),
            Ok(Command::Pass(" two words ".into()))
        );
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"list 3"), Ok(Command::List(Some(3))));
        assert_eq!(parse(b"UIDL 1"), Ok(Command::Uidl(Some(1))));
        assert_eq!(parse(b"RETR 0"), Ok(Command::Retr(0)));
        assert_eq!(parse(b"TOP 2 10"), Ok(Command::Top(2, 10)));
        assert_eq!(parse(b"Dele 7"), Ok(Command::Dele(7)));
    }

    #[test]
    fn errors() {
        for bad in [&b""[..], b"FOOBAR", b"X1", b"\xff\xfe", b" RETR 1", b"HELO"] {
            assert_eq!(parse(bad), Err(CommandError::Unknown), "{bad:?}");
        }
        for bad in [
            &b"RETR"[..],
            b"RETR x",
            b"RETR +1",
            b"RETR -1",
            b"RETR 99999999999",
            b"RETR 1 2",
            b"TOP 1",
            b"TOP 1 -2",
            b"STAT 1",
            b"USER",
            b"USER a b",
            b"PASS",
            b"PASS \xff",
        ] {
            assert!(
                matches!(parse(bad), Err(CommandError::Syntax(_))),
                "{bad:?}"
            );
        }
    }
}
