//! Gzip request bodies (`Content-Encoding: gzip` on OTLP/HTTP), inflated up to a limit: a body
//! that would inflate past it stops there (a zip bomb costs at most the limit plus one byte).

use std::io::Read;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    #[error("invalid gzip body: {0}")]
    Invalid(String),
    #[error("the body inflates past {0} bytes")]
    TooLarge(usize),
}

/// The inflated body, at most `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::GzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GunzipError::Invalid(e.to_string()))?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_body_inflates_up_to_the_limit_and_no_further() {
        let body = vec![7u8; 10_000];
        assert_eq!(gunzip(&gzip(&body), 10_000).unwrap(), body);
        assert_eq!(
            gunzip(&gzip(&body), 9_999),
            Err(GunzipError::TooLarge(9_999))
        );
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(GunzipError::Invalid(_))
        ));
    }
}
