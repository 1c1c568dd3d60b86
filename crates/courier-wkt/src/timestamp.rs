//! `google.protobuf.Timestamp`: the protobuf message, its conversions and its proto3 JSON form.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Seconds of 0001-01-01T00:00:00Z, the first instant proto3 JSON can write.
const MIN_SECONDS: i64 = -62_135_596_800;
/// Seconds of 9999-12-31T23:59:59Z, the last second proto3 JSON can write.
const MAX_SECONDS: i64 = 253_402_300_799;

/// A point in time independent of any time zone: seconds and nanoseconds since the Unix epoch.
///
/// The same message as `google.protobuf.Timestamp` on the wire. Its proto3 JSON is RFC 3339 in
/// UTC ending in `Z` with 0, 3, 6 or 9 fractional digits (`2026-11-24T08:15:30.123456789Z`);
/// reading accepts any RFC 3339 offset and converts to UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, prost::Message)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z; 0001-01-01 to 9999-12-31 inclusive.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Non-negative fractions of a second at nanosecond resolution, 0 to 999,999,999 inclusive;
    /// earlier times still count forward from the second before them.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Why a [`Timestamp`] has no RFC 3339 form (or a text is not one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// `nanos` is outside 0 to 999,999,999.
    NanosOutOfRange(i32),
    /// The time is before 0001-01-01 or after 9999-12-31, which proto3 JSON cannot write.
    OutOfRange(i64),
    /// The text is not an RFC 3339 date and time.
    Syntax(String),
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NanosOutOfRange(nanos) => {
                write!(f, "timestamp nanos {nanos} is outside 0..=999999999")
            }
            Self::OutOfRange(seconds) => write!(
                f,
                "timestamp at {seconds} s from the epoch is outside 0001-01-01..=9999-12-31"
            ),
            Self::Syntax(cause) => write!(f, "not an RFC 3339 timestamp: {cause}"),
        }
    }
}

impl std::error::Error for TimestampError {}

impl prost::Name for Timestamp {
    const NAME: &'static str = "Timestamp";
    const PACKAGE: &'static str = "google.protobuf";
}

impl Timestamp {
    /// The time in UTC, if the fields are in the ranges their documentation gives.
    pub fn to_datetime(self) -> Result<DateTime<Utc>, TimestampError> {
        let nanos = u32::try_from(self.nanos)
            .ok()
            .filter(|nanos| *nanos < 1_000_000_000)
            .ok_or(TimestampError::NanosOutOfRange(self.nanos))?;
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds) {
            return Err(TimestampError::OutOfRange(self.seconds));
        }
        DateTime::from_timestamp(self.seconds, nanos)
            .ok_or(TimestampError::OutOfRange(self.seconds))
    }
}

impl TryFrom<Timestamp> for DateTime<Utc> {
    type Error = TimestampError;

    fn try_from(value: Timestamp) -> Result<Self, Self::Error> {
        value.to_datetime()
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Self {
            seconds: value.timestamp(),
            nanos: value.timestamp_subsec_nanos() as i32,
        }
    }
}

impl From<SystemTime> for Timestamp {
    /// Times before the epoch count forward from the second before them, as the message requires.
    fn from(value: SystemTime) -> Self {
        let (seconds, nanos) = match value.duration_since(UNIX_EPOCH) {
            Ok(after) => (after.as_secs() as i64, after.subsec_nanos()),
            Err(before) => {
                let before = before.duration();
                let whole = before.as_secs() as i64;
                match before.subsec_nanos() {
                    0 => (-whole, 0),
                    nanos => (-whole - 1, 1_000_000_000 - nanos),
                }
            }
        };
        Self {
            seconds,
            nanos: nanos as i32,
        }
    }
}

impl TryFrom<Timestamp> for SystemTime {
    type Error = TimestampError;

    fn try_from(value: Timestamp) -> Result<Self, Self::Error> {
        let time = value.to_datetime()?;
        let nanos = Duration::from_nanos(u64::from(time.timestamp_subsec_nanos()));
        let seconds = Duration::from_secs(time.timestamp().unsigned_abs());
        Ok(if time.timestamp() >= 0 {
            UNIX_EPOCH + seconds + nanos
        } else {
            UNIX_EPOCH - seconds + nanos
        })
    }
}

impl From<pbjson_types::Timestamp> for Timestamp {
    fn from(value: pbjson_types::Timestamp) -> Self {
        Self {
            seconds: value.seconds,
            nanos: value.nanos,
        }
    }
}

impl From<Timestamp> for pbjson_types::Timestamp {
    fn from(value: Timestamp) -> Self {
        Self {
            seconds: value.seconds,
            nanos: value.nanos,
        }
    }
}

impl fmt::Display for Timestamp {
    /// The proto3 JSON form, or the raw fields for a timestamp that has none.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Ok(time) => f.write_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Err(_) => write!(
                f,
                "Timestamp {{ seconds: {}, nanos: {} }}",
                self.seconds, self.nanos
            ),
        }
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let time = DateTime::parse_from_rfc3339(text)
            .map_err(|cause| TimestampError::Syntax(cause.to_string()))?;
        let timestamp = Self::from(time.with_timezone(&Utc));
        timestamp.to_datetime()?;
        Ok(timestamp)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let time = self.to_datetime().map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TimestampVisitor)
    }
}

/// Reads the RFC 3339 text of a [`Timestamp`].
struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an RFC 3339 timestamp such as \"2026-11-24T08:15:30.5Z\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests;
