//! The little of RESP2 (the Redis protocol) that PUBLISH/SUBSCRIBE needs: encoding commands as
//! arrays of bulk strings, and decoding the server's replies and pushed messages. What the
//! server sends is parsed defensively: a malformed or oversized reply is an error, never a panic.

use anyhow::{Context, bail};

/// Bulk strings larger than this are refused (the benchmark's payloads are a few hundred bytes).
const MAX_BULK: usize = 1 << 20;

/// One decoded reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// Append the command `args` (`PUBLISH`, channel, payload) to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Decode one reply from the start of `buf`. `Ok(None)`: more bytes are needed; otherwise the
/// value and how many bytes it took.
pub fn decode(buf: &[u8]) -> anyhow::Result<Option<(Value, usize)>> {
    decode_at(buf, 0, 0)
}

fn decode_at(buf: &[u8], at: usize, depth: usize) -> anyhow::Result<Option<(Value, usize)>> {
    if depth > 8 {
        bail!("replies nested too deeply");
    }
    let Some(line_end) = find_crlf(buf, at + 1) else {
        return Ok(None);
    };
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let line = &buf[at + 1..line_end];
    let next = line_end + 2;
    let int = || -> anyhow::Result<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .context("malformed length or integer")
    };
    Ok(Some(match kind {
        b'+' => (Value::Simple(line.to_vec()), next),
        b'-' => (Value::Error(line.to_vec()), next),
        b':' => (Value::Int(int()?), next),
        b'$' => {
            let len = int()?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), next)));
            }
            let len = usize::try_from(len).context("bulk length")?;
            if len > MAX_BULK {
                bail!("bulk string of {len} bytes");
            }
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            if &buf[next + len..next + len + 2] != b"\r\n" {
                bail!("bulk string not followed by CRLF");
            }
            (Value::Bulk(Some(buf[next..next + len].to_vec())), next + len + 2)
        }
        b'*' => {
            let count = int()?;
            if count < 0 {
                return Ok(Some((Value::Array(None), next)));
            }
            let count = usize::try_from(count).context("array length")?;
            if count > 1024 {
                bail!("array of {count} elements");
            }
            let mut items = Vec::with_capacity(count);
            let mut pos = next;
            for _ in 0..count {
                let Some((v, end)) = decode_at(buf, pos, depth + 1)? else {
                    return Ok(None);
                };
                items.push(v);
                pos = end;
            }
            (Value::Array(Some(items)), pos)
        }
        other => bail!("unknown reply type {:?}", other as char),
    }))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|p| from + p)
}

/// The payload of a pushed pub/sub message (`["message", channel, payload]`), if `v` is one.
pub fn message_payload(v: &Value) -> Option<&[u8]> {
    let Value::Array(Some(items)) = v else { return None };
    match items.as_slice() {
        [Value::Bulk(Some(kind)), _, Value::Bulk(Some(payload))] if kind == b"message" => Some(payload),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_string_arrays() {
        let mut out = Vec::new();
        encode(&mut out, &[b"PUBLISH", b"c1", b"a\r\nb"]);
        assert_eq!(out, b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nc1\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn decodes_replies_and_pushed_messages() {
        let buf = b":1\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nc1\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$4\r\na\r\nb\r\n-ERR x\r\n";
        let (v, n) = decode(buf).unwrap().unwrap();
        assert_eq!(v, Value::Int(1));
        let (v, m) = decode(&buf[n..]).unwrap().unwrap();
        assert_eq!(message_payload(&v), None);
        let (v, k) = decode(&buf[n + m..]).unwrap().unwrap();
        assert_eq!(message_payload(&v), Some(&b"a\r\nb"[..]));
        let (v, _) = decode(&buf[n + m + k..]).unwrap().unwrap();
        assert_eq!(v, Value::Error(b"ERR x".to_vec()));
    }

    #[test]
    fn waits_for_a_whole_reply_and_refuses_garbage() {
        let full = b"*3\r\n$7\r\nmessage\r\n$2\r\nc1\r\n$4\r\nabcd\r\n";
        for cut in 0..full.len() {
            assert_eq!(decode(&full[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(decode(b"?x\r\n").is_err());
        assert!(decode(b"$5\r\nabcdeXY").is_err());
        assert!(decode(b":12a\r\n").is_err());
        assert!(decode(b"$99999999999\r\n").is_err());
    }
}
