//! The proto3 JSON form of timestamps, against text written by hand from the specification.

use super::*;

fn json(seconds: i64, nanos: i32) -> String {
    serde_json::to_string(&Timestamp { seconds, nanos }).unwrap()
}

fn read(text: &str) -> Result<Timestamp, serde_json::Error> {
    serde_json::from_str(&format!("\"{text}\""))
}

#[test]
fn writes_utc_with_z_and_0_3_6_or_9_fractional_digits() {
    // 2026-11-24T08:15:30Z is 1_795_508_130 s after the epoch.
    assert_eq!(json(1_795_508_130, 0), r#""2026-11-24T08:15:30Z""#);
    assert_eq!(
        json(1_795_508_130, 500_000_000),
        r#""2026-11-24T08:15:30.500Z""#
    );
    assert_eq!(
        json(1_795_508_130, 123_456_000),
        r#""2026-11-24T08:15:30.123456Z""#
    );
    assert_eq!(
        json(1_795_508_130, 123_456_789),
        r#""2026-11-24T08:15:30.123456789Z""#
    );
    assert_eq!(json(0, 0), r#""1970-01-01T00:00:00Z""#);
    assert_eq!(json(-1, 999_999_999), r#""1969-12-31T23:59:59.999999999Z""#);
}

#[test]
fn writes_the_first_and_last_instants_and_refuses_beyond() {
    assert_eq!(json(MIN_SECONDS, 0), r#""0001-01-01T00:00:00Z""#);
    assert_eq!(
        json(MAX_SECONDS, 999_999_999),
        r#""9999-12-31T23:59:59.999999999Z""#
    );
    for (seconds, nanos) in [
        (MIN_SECONDS - 1, 0),
        (MAX_SECONDS + 1, 0),
        (0, -1),
        (0, 1_000_000_000),
    ] {
        let timestamp = Timestamp { seconds, nanos };
        assert!(
            serde_json::to_string(&timestamp).is_err(),
            "{timestamp:?} was written"
        );
    }
}

#[test]
fn reads_any_offset_into_utc() {
    let expected = Timestamp {
        seconds: 1_795_508_130,
        nanos: 123_456_789,
    };
    for text in [
        "2026-11-24T08:15:30.123456789Z",
        "2026-11-24T08:15:30.123456789+00:00",
        "2026-11-24T09:15:30.123456789+01:00",
        "2026-11-24T03:45:30.123456789-04:30",
    ] {
        assert_eq!(read(text).unwrap(), expected, "{text}");
    }
    assert_eq!(read("2026-11-24T08:15:30.5Z").unwrap().nanos, 500_000_000);
}

#[test]
fn refuses_text_that_is_not_rfc_3339() {
    for text in [
        "2026-11-24",
        "2026-11-24 08:15:30",
        "yesterday",
        "2026-11-24T08:15:30",
        "",
    ] {
        assert!(read(text).is_err(), "{text:?} was read");
    }
    assert!(serde_json::from_str::<Timestamp>("1795508130").is_err());
}

#[test]
fn round_trips_through_system_time_on_both_sides_of_the_epoch() {
    for (seconds, nanos) in [
        (1_795_508_130, 123_456_789),
        (-1, 999_999_999),
        (-2, 1),
        (0, 0),
    ] {
        let timestamp = Timestamp { seconds, nanos };
        let time = SystemTime::try_from(timestamp).unwrap();
        assert_eq!(Timestamp::from(time), timestamp);
    }
}

#[test]
fn is_the_same_message_on_the_wire_as_pbjson_types() {
    use prost::Message as _;
    let ours = Timestamp {
        seconds: 1_795_508_130,
        nanos: 7,
    };
    let theirs = pbjson_types::Timestamp::from(ours);
    assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
    assert_eq!(Timestamp::decode(&*theirs.encode_to_vec()).unwrap(), ours);
}
