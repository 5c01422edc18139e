//! BER → DER length normalization for CMS blobs.
//!
//! Some providers (Aruba 2026) emit the SignedData with indefinite lengths, which the
//! `der` crate rejects. This rewrites every length in definite, minimal form and leaves
//! everything else untouched, which is all those blobs need.
use super::SmimeError;

const MAX_DEPTH: usize = 64;

/// Re-encodes the first TLV of `input` with definite minimal lengths. Trailing bytes
/// (often end-of-contents padding) are ignored.
pub(crate) fn normalize(input: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(input.len());
    tlv(input, &mut pos, &mut out, 0).map_err(|e| SmimeError::Cms(format!("BER: {e}")))?;
    Ok(out)
}

fn byte(input: &[u8], pos: &mut usize) -> Result<u8, &'static str> {
    let b = *input.get(*pos).ok_or("truncated")?;
    *pos += 1;
    Ok(b)
}

fn tlv(input: &[u8], pos: &mut usize, out: &mut Vec<u8>, depth: usize) -> Result<(), &'static str> {
    if depth > MAX_DEPTH {
        return Err("nesting too deep");
    }
    let tag_start = *pos;
    let first = byte(input, pos)?;
    if first & 0x1f == 0x1f {
        while byte(input, pos)? & 0x80 != 0 {
            if *pos - tag_start > 6 {
                return Err("tag too long");
            }
        }
    }
    let constructed = first & 0x20 != 0;
    out.extend_from_slice(&input[tag_start..*pos]);

    let l0 = byte(input, pos)?;
    let mut content = Vec::new();
    if l0 == 0x80 {
        if !constructed {
            return Err("indefinite length on a primitive value");
        }
        loop {
            if input.get(*pos..*pos + 2) == Some(&[0, 0]) {
                *pos += 2;
                break;
            }
            if *pos >= input.len() {
                return Err("missing end-of-contents");
            }
            tlv(input, pos, &mut content, depth + 1)?;
        }
    } else {
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n > 4 {
                return Err("length too large");
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(byte(input, pos)?);
            }
            len
        };
        let end = pos.checked_add(len).ok_or("length overflow")?;
        let value = input.get(*pos..end).ok_or("truncated")?;
        if constructed {
            let mut inner = 0;
            while inner < value.len() {
                tlv(value, &mut inner, &mut content, depth + 1)?;
            }
        } else {
            content.extend_from_slice(value);
        }
        *pos = end;
    }
    push_len(out, content.len());
    out.extend_from_slice(&content);
    Ok(())
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn der_is_unchanged() {
        let der = [0x30, 0x08, 0x02, 0x01, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x07];
        assert_eq!(normalize(&der).unwrap(), der);
        // a constructed value whose content is not a TLV
        assert!(normalize(&[0x30, 0x06, 0x02, 0x01, 0x05, 0xa0, 0x01, 0x00]).is_err());
    }

    #[test]
    fn indefinite_becomes_definite() {
        // SEQUENCE(indef) { INTEGER 5, [0](indef) { INTEGER 7 } } + trailing padding
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0xa0, 0x80, 0x02, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00,
        ];
        assert_eq!(
            normalize(&ber).unwrap(),
            [0x30, 0x08, 0x02, 0x01, 0x05, 0xa0, 0x03, 0x02, 0x01, 0x07]
        );
    }

    #[test]
    fn non_minimal_and_long_lengths() {
        let ber = [0x04, 0x81, 0x02, 0xaa, 0xbb];
        assert_eq!(normalize(&ber).unwrap(), [0x04, 0x02, 0xaa, 0xbb]);
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(std::iter::repeat_n(7u8, 256));
        assert_eq!(normalize(&long).unwrap(), long);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0x02, 0x01],
            &[0x02, 0x80, 0x00, 0x00],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x05, 0x02, 0x01],
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 200).flatten().collect();
        assert!(normalize(&deep).is_err());
    }
}
