//! Whole numbers of JSON bodies as JSON reads them: `2.0` is the number `2` (JSON has one
//! kind of number; JSON Schema's `integer` admits `2.0`), which serde's integer types refuse.
//! For `#[serde(deserialize_with = ...)]` on the integers of request bodies.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// The largest whole float that is exactly an integer (larger ones are not written exactly).
const EXACT: f64 = 9_007_199_254_740_992.0;

struct Whole;

impl<'de> Visitor<'de> for Whole {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number, 0 or more")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(Some)
            .map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v.fract() == 0.0 && (0.0..=EXACT).contains(&v) {
            Ok(Some(v as u64))
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(Whole)
    }
}

/// A `u64`, also written as a whole float.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Whole)?
        .ok_or_else(|| de::Error::invalid_type(Unexpected::Unit, &Whole))
}

/// An optional `u16`, also written as a whole float.
pub fn option_u16<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    d.deserialize_option(Whole)?
        .map(|n| {
            u16::try_from(n).map_err(|_| {
                de::Error::invalid_value(Unexpected::Unsigned(n), &"a whole number up to 65535")
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::u64")]
        n: u64,
        #[serde(default, deserialize_with = "super::option_u16")]
        port: Option<u16>,
    }

    fn read(v: serde_json::Value) -> Result<Body, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        let body = |n: u64, port| Body { n, port };
        assert_eq!(read(json!({"n": 5})), Ok(body(5, None)));
        assert_eq!(read(json!({"n": 5.0, "port": 25.0})), Ok(body(5, Some(25))));
        assert_eq!(
            read(json!({"n": u64::MAX, "port": null})),
            Ok(body(u64::MAX, None))
        );
        for bad in [
            json!({"n": 5.5}),
            json!({"n": -1}),
            json!({"n": -1.0}),
            json!({"n": "5"}),
            json!({"n": null}),
            json!({"n": 1e300}),
            json!({"n": 1, "port": 65536}),
            json!({"n": 1, "port": 80.5}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
        // From a text format too (TOML reads integers as i64).
        let toml: Body = toml::from_str("n = 7\nport = 587").unwrap();
        assert_eq!(toml, body(7, Some(587)));
    }
}
