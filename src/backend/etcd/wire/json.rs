//! How the gateway's JSON spells bytes (padded standard base64) and int64
//! (a string; read as a string or a number).

use bytes::Bytes;
use serde::{Deserializer, Serializer};

/// Bytes as the gateway wants them: padded standard base64.
pub(super) fn base64<S: Serializer>(
    bytes: &Bytes,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::base64_bytes::encode(bytes))
}

/// Optional bytes as base64 (skipped when `None`).
pub(super) fn base64_some<S: Serializer>(
    bytes: &Option<Bytes>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => base64(bytes, serializer),
        None => serializer.serialize_none(),
    }
}

/// An int64 as the gateway wants it: a JSON string.
pub(super) fn int64_text<S: Serializer>(
    n: &i64,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(n)
}

/// An optional int64 as a JSON string (skipped when `None`).
pub(super) fn int64_text_some<S: Serializer>(
    n: &Option<i64>,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    match n {
        Some(n) => int64_text(n, serializer),
        None => serializer.serialize_none(),
    }
}

/// An int64 that may come as a JSON string or number; absent or `null`
/// means 0. Read by a visitor: no buffering, no allocation.
pub(crate) fn int64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<i64, D::Error> {
    struct Int64;
    impl serde::de::Visitor<'_> for Int64 {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an int64, as a number or a string")
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> std::result::Result<i64, E> {
            Ok(n)
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<i64, E> {
            i64::try_from(n).map_err(|_| E::custom(format!("{n} is out of the int64 range")))
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> std::result::Result<i64, E> {
            text.parse()
                .map_err(|_| E::custom(format!("{text:?} is not an int64")))
        }

        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<i64, E> {
            Ok(0)
        }
    }
    deserializer.deserialize_any(Int64)
}
