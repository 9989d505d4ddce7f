//! Base64 as Consul and etcd send it (padded standard alphabet), read
//! inside serde's decoding with the `base64` crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserializer;
use serde::de::Visitor;

/// `bytes` as padded standard base64.
pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A base64 string, or `null` (`None`).
pub(crate) fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Bytes>, D::Error> {
    deserializer.deserialize_option(Base64)
}

/// A base64 string; absent or `null` is empty.
#[cfg(feature = "etcd")]
pub(crate) fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
    optional(deserializer).map(Option::unwrap_or_default)
}

struct Base64;

impl<'de> Visitor<'de> for Base64 {
    type Value = Option<Bytes>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a base64 string or null")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        STANDARD
            .decode(text)
            .map(|decoded| Some(Bytes::from(decoded)))
            .map_err(|e| E::custom(format!("not base64: {e}")))
    }
}

#[cfg(all(test, feature = "etcd"))]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Value {
        #[serde(default, deserialize_with = "bytes")]
        v: Bytes,
    }

    #[test]
    fn decodes_base64_null_and_absent_and_refuses_the_rest() {
        let read = |json: &str| serde_json::from_str::<Value>(json).map(|v| v.v);
        assert_eq!(read(r#"{"v":"aGk="}"#).unwrap(), Bytes::from_static(b"hi"));
        assert_eq!(read(r#"{"v":null}"#).unwrap(), Bytes::new());
        assert_eq!(read("{}").unwrap(), Bytes::new());
        assert!(read(r#"{"v":"!!"}"#).is_err());
        assert!(read(r#"{"v":"aGk"}"#).is_err(), "unpadded");
        assert_eq!(encode(b"hi"), "aGk=");
    }
}
