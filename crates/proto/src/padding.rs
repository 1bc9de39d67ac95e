//! Length padding for end-to-end payloads.
//!
//! Ciphertext length leaks plaintext length. Before encryption the client pads its content to a
//! bucket so that the server learns only a coarse size class: 256 bytes, doubling up to 64 KiB,
//! then multiples of 64 KiB. Layout: `len: u32 little-endian | content | zeros`.

/// The smallest padded size.
pub const MIN_BUCKET: usize = 256;
const LINEAR_STEP: usize = 64 * 1024;

/// Padded size for `content_len` bytes of content (including the 4-byte length header).
pub fn bucket(content_len: usize) -> usize {
    let need = content_len + 4;
    if need <= LINEAR_STEP {
        need.next_power_of_two().max(MIN_BUCKET)
    } else {
        need.div_ceil(LINEAR_STEP) * LINEAR_STEP
    }
}

pub fn pad(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket(content.len()));
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    out.extend_from_slice(content);
    out.resize(bucket(content.len()), 0);
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaddingError {
    #[error("padded payload is shorter than its length header")]
    Short,
    #[error("padded payload declares {declared} bytes of content but holds {available}")]
    Length { declared: usize, available: usize },
    #[error("padding bytes are not zero")]
    NonZeroPadding,
}

pub fn unpad(padded: &[u8]) -> Result<&[u8], PaddingError> {
    let header: [u8; 4] = padded
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or(PaddingError::Short)?;
    let declared = u32::from_le_bytes(header) as usize;
    let body = &padded[4..];
    if declared > body.len() {
        return Err(PaddingError::Length {
            declared,
            available: body.len(),
        });
    }
    let (content, zeros) = body.split_at(declared);
    if zeros.iter().any(|&b| b != 0) {
        return Err(PaddingError::NonZeroPadding);
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_coarse() {
        assert_eq!(bucket(0), 256);
        assert_eq!(bucket(252), 256);
        assert_eq!(bucket(253), 512);
        assert_eq!(bucket(5000), 8192);
        assert_eq!(bucket(70_000), 128 * 1024);
    }

    #[test]
    fn pad_round_trips_and_rejects_garbage() {
        for len in [0, 1, 100, 252, 253, 4096, 70_000] {
            let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let padded = pad(&content);
            assert_eq!(padded.len(), bucket(len));
            assert_eq!(unpad(&padded).unwrap(), &content[..]);
        }
        assert_eq!(unpad(&[1, 2]), Err(PaddingError::Short));
        assert!(matches!(
            unpad(&[9, 0, 0, 0, 1]),
            Err(PaddingError::Length { .. })
        ));
        assert_eq!(unpad(&[0, 0, 0, 0, 1]), Err(PaddingError::NonZeroPadding));
    }
}
