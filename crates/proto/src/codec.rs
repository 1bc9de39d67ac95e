//! Encoding and decoding of frames.
//!
//! Decoding is strict: a frame must be consumed exactly (trailing bytes are an error) and must
//! not exceed the caller's size limit. Errors say what was wrong without echoing the input.

use serde::Serialize;

use crate::{ClientFrame, ServerFrame};

/// Why bytes were not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("frame is empty")]
    Empty,
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("unknown frame or request type")]
    UnknownType,
    #[error("frame is truncated")]
    Truncated,
    #[error("frame has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("frame is malformed: {0}")]
    Malformed(&'static str),
}

fn map_err(e: postcard::Error) -> DecodeError {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => DecodeError::Truncated,
        E::DeserializeBadEnum => DecodeError::UnknownType,
        E::DeserializeBadVarint => DecodeError::Malformed("bad integer encoding"),
        E::DeserializeBadUtf8 => DecodeError::Malformed("text is not UTF-8"),
        E::DeserializeBadBool => DecodeError::Malformed("bad boolean"),
        E::DeserializeBadOption => DecodeError::Malformed("bad option tag"),
        E::DeserializeBadChar => DecodeError::Malformed("bad character"),
        E::SerdeDeCustom => DecodeError::Malformed("a field failed validation"),
        _ => DecodeError::Malformed("undecodable"),
    }
}

fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], limit: usize) -> Result<T, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(map_err)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decode a frame received by the server. `limit` is the largest frame accepted, in bytes.
pub fn decode_client_frame(bytes: &[u8], limit: usize) -> Result<ClientFrame, DecodeError> {
    // serde reports an unknown enum variant as a generic custom error, indistinguishable from a
    // failed field check; look at the type tags first so the client is told which it was.
    if let Some((tag, used)) = varint(bytes) {
        let unknown = match tag {
            0 => varint(&bytes[used..])
                .and_then(|(_, id_len)| varint(&bytes[used + id_len..]))
                .is_some_and(|(req, _)| req >= crate::frame::REQUEST_VARIANTS),
            t => t >= crate::frame::CLIENT_FRAME_VARIANTS,
        };
        if unknown && bytes.len() <= limit {
            return Err(DecodeError::UnknownType);
        }
    }
    decode(bytes, limit)
}

/// A postcard (LEB128) unsigned varint at the start of `bytes`, with its length in bytes.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Strictly decode any postcard value of this crate (exactly one value, no trailing bytes), for
/// payloads clients exchange inside encryption. Never panics.
pub fn decode_exact<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    decode(bytes, usize::MAX)
}

/// Decode a frame received by a client.
pub fn decode_server_frame(bytes: &[u8], limit: usize) -> Result<ServerFrame, DecodeError> {
    decode(bytes, limit)
}

/// Encode any frame. Encoding our own well-formed types cannot fail short of memory exhaustion.
pub fn encode<T: Serialize>(frame: &T) -> Vec<u8> {
    postcard::to_allocvec(frame).expect("postcard serialisation of protocol types is infallible")
}

/// Encode `ServerFrame::Push` straight from borrowed parts, without first copying the payload
/// into an [`crate::Envelope`]. Produces exactly the bytes `encode(&ServerFrame::Push(..))` would.
pub fn encode_push(
    seq: u64,
    message_id: crate::MessageId,
    from: Option<crate::DeviceAddress>,
    server_ts: u64,
    payload: &[u8],
    franking: Option<crate::Franking>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct EnvelopeRef<'a> {
        seq: u64,
        message_id: crate::MessageId,
        from: Option<crate::DeviceAddress>,
        server_ts: u64,
        payload: &'a [u8],
        franking: Option<crate::Franking>,
    }
    // Mirrors `ServerFrame` up to its `Push` variant, so the variant index matches.
    #[derive(Serialize)]
    #[allow(dead_code)]
    enum Frame<'a> {
        Response(()),
        Push(EnvelopeRef<'a>),
    }
    let mut out = Vec::with_capacity(payload.len() + 64);
    let frame = Frame::Push(EnvelopeRef {
        seq,
        message_id,
        from,
        server_ts,
        payload,
        franking,
    });
    out = postcard::to_extend(&frame, out).expect("serialising into a Vec is infallible");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    fn sample_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame::Request {
                id: 7,
                body: Request::Send {
                    message_id: MessageId([1; 16]),
                    to: vec![Recipient {
                        account: AccountId([2; 16]),
                        devices: vec![DeviceId(1), DeviceId(2)],
                    }],
                    payload: vec![9; 300],
                    epoch: Some(EpochRef {
                        conversation: ConversationId([3; 16]),
                        epoch: 4,
                        token: MembershipToken([7; 32]),
                    }),
                    ttl_secs: None,
                    franking: None,
                },
            },
            ClientFrame::Request {
                id: 9,
                body: Request::Commit {
                    conversation: ConversationId([3; 16]),
                    epoch: 4,
                    token: Some(MembershipToken([2; 32])),
                    next: [6; 32],
                    commit: Outgoing {
                        message_id: MessageId([5; 16]),
                        to: vec![],
                        payload: vec![1; 40],
                    },
                    welcome: None,
                },
            },
            ClientFrame::Request {
                id: 10,
                body: Request::UploadKeyPackages {
                    one_time: vec![Bytes::from(vec![1, 2, 3])],
                    last_resort: Some(Bytes::from(vec![4])),
                },
            },
            ClientFrame::Request {
                id: 8,
                body: Request::RequestCode {
                    phone: Phone::parse("+15550000001").unwrap(),
                },
            },
            ClientFrame::Ack {
                seqs: vec![1, 2, u64::MAX],
            },
        ]
    }

    #[test]
    fn frames_round_trip() {
        for f in sample_frames() {
            let bytes = encode(&f);
            assert_eq!(decode_client_frame(&bytes, 1 << 20).unwrap(), f);
        }
        for from in [
            Some(DeviceAddress {
                account: AccountId([4; 16]),
                device: DeviceId(1),
            }),
            None,
        ] {
            let s = ServerFrame::Push(Envelope {
                seq: 42,
                message_id: MessageId([3; 16]),
                from,
                server_ts: 1_700_000_000_000,
                payload: b"opaque".to_vec(),
                franking: from.map(|_| crate::Franking {
                    commitment: [5; 32],
                    server_tag: [6; 32],
                }),
            });
            assert_eq!(decode_server_frame(&encode(&s), 1 << 20).unwrap(), s);
            let ServerFrame::Push(e) = &s else { unreachable!() };
            assert_eq!(
                encode_push(e.seq, e.message_id, e.from, e.server_ts, &e.payload, e.franking),
                encode(&s),
                "the borrowed encoder writes the same bytes"
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for f in sample_frames() {
            let bytes = encode(&f);
            for cut in 0..bytes.len() {
                assert!(
                    decode_client_frame(&bytes[..cut], 1 << 20).is_err(),
                    "cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn rejects_unknown_types_trailing_bytes_and_oversize() {
        assert_eq!(decode_client_frame(&[], 10), Err(DecodeError::Empty));
        assert_eq!(decode_client_frame(&[5], 10), Err(DecodeError::UnknownType));
        assert_eq!(
            decode_client_frame(&[0, 1, 99], 10),
            Err(DecodeError::UnknownType)
        );
        assert_eq!(
            decode_client_frame(&[0, 1, 7], 10),
            Ok(ClientFrame::Request {
                id: 1,
                body: Request::Ping
            })
        );
        let mut bytes = encode(&ClientFrame::Request {
            id: 1,
            body: Request::Ping,
        });
        bytes.push(0);
        assert_eq!(
            decode_client_frame(&bytes, 100),
            Err(DecodeError::TrailingBytes(1))
        );
        assert_eq!(
            decode_client_frame(&[1; 11], 10),
            Err(DecodeError::TooLarge { len: 11, limit: 10 })
        );
    }

    #[test]
    fn a_huge_declared_length_does_not_allocate_or_panic() {
        // Ack with a declared Vec length of ~2^63 and no elements.
        let bytes = [1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(decode_client_frame(&bytes, 100), Err(DecodeError::Truncated));
    }
}
