//! The webhook signature: `X-MCP-Signature: v1=<hex>`, the HMAC-SHA256 of
//! `<timestamp>.<body>` under the channel's signing key, with the
//! timestamp (Unix seconds) in `X-MCP-Timestamp`. A receiver recomputes
//! it, compares in constant time, and refuses a timestamp more than five
//! minutes off, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-MCP-Signature";
pub const TIMESTAMP_HEADER: &str = "X-MCP-Timestamp";
pub const DELIVERY_HEADER: &str = "X-MCP-Delivery";
pub const ATTEMPT_HEADER: &str = "X-MCP-Attempt";

/// The value of the signature header for `body` sent at `timestamp`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature as a receiver would: the same HMAC, compared in
/// constant time, and a timestamp within `tolerance_s` of `now_s`.
pub fn verify(key: &[u8], timestamp: i64, body: &[u8], header: &str, now_s: i64, tolerance_s: i64) -> bool {
    let Some(given) = header.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else { return false };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    (now_s - timestamp).abs() <= tolerance_s && mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_body_and_time() {
        let header = signature(b"secret-key-0123456789", 1_700_000_000, b"{\"a\":1}");
        // The same as `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret-key-0123456789`.
        assert_eq!(header, "v1=95a94f8e9919abdf552708a6c1d5604116ad2a78af755c3113cf47afa01d92f2");
        assert!(verify(b"secret-key-0123456789", 1_700_000_000, b"{\"a\":1}", &header, 1_700_000_100, 300));
        assert!(!verify(b"another-key-0123456789", 1_700_000_000, b"{\"a\":1}", &header, 1_700_000_100, 300));
        assert!(!verify(b"secret-key-0123456789", 1_700_000_000, b"{\"a\":2}", &header, 1_700_000_100, 300));
        assert!(
            !verify(b"secret-key-0123456789", 1_700_000_000, b"{\"a\":1}", &header, 1_700_000_301, 300),
            "replayed late"
        );
    }
}
