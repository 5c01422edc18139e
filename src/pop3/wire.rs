//! Bytes on the wire: bounded command lines in, byte-stuffed multi-line answers out.
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line is in the buffer, without its line ending.
    Complete,
    /// The line was longer than the limit; it was read and discarded up to its end.
    TooLong,
    /// End of input. A last line without its line ending is dropped.
    Eof,
}

/// Reads one line (LF or CRLF terminated) of at most `max` bytes, line ending included.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(Line::Eof);
        }
        let (n, done) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if !too_long {
            if buf.len() + n > max {
                // keep nothing of it; the rest is skipped up to the LF
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..n]);
            }
        }
        r.consume(n);
        if done {
            if too_long {
                return Ok(Line::TooLong);
            }
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Complete);
        }
    }
}

/// Appends `raw` as a POP3 multi-line body (RFC 1939 §3): CRLF line endings, lines that
/// start with `.` doubled, then the `.` line. With `body_lines`, only the header, the
/// blank line and that many body lines (TOP).
#[cfg(test)]
pub(crate) fn stuff(out: &mut Vec<u8>, raw: &[u8], body_lines: Option<u64>) {
    let mut s = Stuffing::new(body_lines);
    while !s.next_chunk(out, raw, usize::MAX) {}
}

/// Dot-stuffing of one message a piece at a time, so a 30 MB RETR never becomes a
/// 30 MB output buffer.
pub(crate) struct Stuffing {
    pos: usize,
    in_header: bool,
    sent_body: u64,
    /// TOP: body lines to send; None for the whole message.
    body_lines: Option<u64>,
}

impl Stuffing {
    pub(crate) fn new(body_lines: Option<u64>) -> Self {
        Self {
            pos: 0,
            in_header: true,
            sent_body: 0,
            body_lines,
        }
    }

    /// Appends the next lines of `raw` until `out` holds `budget` bytes; true once the
    /// terminating `.` line is out.
    pub(crate) fn next_chunk(&mut self, out: &mut Vec<u8>, raw: &[u8], budget: usize) -> bool {
        while self.pos < raw.len() && out.len() < budget {
            let rest = &raw[self.pos..];
            let piece = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => &rest[..=i],
                None => rest,
            };
            self.pos += piece.len();
            let line = piece.strip_suffix(b"\n").unwrap_or(piece);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !self.in_header {
                if self.body_lines.is_some_and(|k| self.sent_body >= k) {
                    self.pos = raw.len();
                    break;
                }
                self.sent_body += 1;
            } else if line.is_empty() {
                self.in_header = false;
            }
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        if self.pos < raw.len() {
            return false;
        }
        out.extend_from_slice(b".\r\n");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(Line, Vec<u8>)> {
        let mut r = tokio::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            let l = read_line(&mut r, max, &mut buf).await.unwrap();
            let eof = l == Line::Eof;
            out.push((l, buf));
            if eof {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn bounded_lines() {
        let got = lines(b"STAT\r\nLIST 1\nxxxxxxxxxxxxxxxxxx\r\nNOOP\r\npartial", 10).await;
        let want: Vec<(Line, Vec<u8>)> = vec![
            (Line::Complete, b"STAT".to_vec()),
            (Line::Complete, b"LIST 1".to_vec()),
            (Line::TooLong, vec![]),
            (Line::Complete, b"NOOP".to_vec()),
            (Line::Eof, b"partial".to_vec()),
        ];
        assert_eq!(got, want);
        // the limit counts the line ending
        assert_eq!(lines(b"12345678\r\n", 10).await[0].0, Line::Complete);
        assert_eq!(lines(b"123456789\r\n", 10).await[0].0, Line::TooLong);
    }

    #[test]
    fn stuffing() {
        let raw = b"Subject: x\r\n\r\n.hidden\nline 2\r\n..\r\nlast";
        let mut out = Vec::new();
        stuff(&mut out, raw, None);
        assert_eq!(
            out,
            b"Subject: x\r\n\r\n..hidden\r\nline 2\r\n...\r\nlast\r\n.\r\n"
        );
        let mut out = Vec::new();
        stuff(&mut out, raw, Some(1));
        assert_eq!(out, b"Subject: x\r\n\r\n..hidden\r\n.\r\n");
        let mut out = Vec::new();
        stuff(&mut out, raw, Some(0));
        assert_eq!(out, b"Subject: x\r\n\r\n.\r\n");
        let mut out = Vec::new();
        stuff(&mut out, b"", None);
        assert_eq!(out, b".\r\n");
        // no body at all: everything is header
        let mut out = Vec::new();
        stuff(&mut out, b"A: b\r\n", Some(0));
        assert_eq!(out, b"A: b\r\n.\r\n");
    }

    #[test]
    fn stuffing_in_pieces_gives_the_same_bytes() {
        let raw: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{}line {i}\r\n", if i % 7 == 0 { "." } else { "" }).into_bytes())
            .collect();
        let mut whole = Vec::new();
        stuff(&mut whole, &raw, None);
        let (mut pieces, mut chunks) = (Vec::new(), 0);
        let mut s = Stuffing::new(None);
        loop {
            let mut out = Vec::new();
            let done = s.next_chunk(&mut out, &raw, 1000);
            assert!(out.len() < 1000 + 64, "a chunk stays near its budget");
            pieces.extend_from_slice(&out);
            chunks += 1;
            if done {
                break;
            }
        }
        assert_eq!(pieces, whole);
        assert!(chunks > 50);
    }
}
