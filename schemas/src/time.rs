//! Time helpers shared by every crate: nanosecond timestamps and RFC 3339 rendering.

use std::time::{SystemTime, UNIX_EPOCH};

pub const NANOS_PER_MILLI: i64 = 1_000_000;
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
pub const NANOS_PER_HOUR: i64 = 3_600 * NANOS_PER_SECOND;
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SECOND;

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since the Unix epoch of a nanosecond timestamp (floor, so negative times stay ordered).
pub fn day_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(NANOS_PER_DAY)
}

/// Hours since the Unix epoch of a nanosecond timestamp (floor, like [`day_of`]).
pub fn hour_of(ts_ns: i64) -> i64 {
    ts_ns.div_euclid(NANOS_PER_HOUR)
}

/// Civil date (year, month, day) of a day number since the epoch (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number since the epoch of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a day number: the partition name of the embedded store.
pub fn day_string(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// RFC 3339 with nanoseconds, UTC: `2026-11-23T10:00:00.123456789Z`.
pub fn rfc3339(ts_ns: i64) -> String {
    let day = day_of(ts_ns);
    let within = ts_ns - day * NANOS_PER_DAY;
    let secs = within / NANOS_PER_SECOND;
    let nanos = within % NANOS_PER_SECOND;
    let (h, mi, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let date = day_string(day);
    if nanos == 0 {
        format!("{date}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{date}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z")
    }
}

/// Parses RFC 3339 (`2026-11-23T10:00:00Z`, fractional seconds and `+hh:mm` offsets allowed) or a
/// bare date (`2026-11-23`, midnight UTC) into nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = text.get(0..4)?.parse().ok()?;
    let month: u32 = text.get(5..7)?.parse().ok()?;
    let day: u32 = text.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if bytes.len() == 10 {
        // Outside about 1677-2262 the instant does not fit in i64 nanoseconds.
        return days.checked_mul(NANOS_PER_DAY);
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes.len() < 19 {
        return None;
    }
    let h: i64 = text.get(11..13)?.parse().ok()?;
    let mi: i64 = text.get(14..16)?.parse().ok()?;
    let s: i64 = text.get(17..19)?.parse().ok()?;
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut value: i64 = 0;
        for (i, c) in frac[..digits].bytes().enumerate() {
            if i < 9 {
                value = value * 10 + i64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            value *= 10;
        }
        nanos = value;
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    secs.checked_mul(NANOS_PER_SECOND)?.checked_add(nanos)
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h`, `7d` into nanoseconds.
pub fn parse_duration_ns(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_ns = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => NANOS_PER_HOUR,
        "d" => NANOS_PER_DAY,
        "w" => 7 * NANOS_PER_DAY,
        _ => return None,
    };
    n.checked_mul(unit_ns)
}

/// A duration setting, written as text (`500ms`, `30s`, `5m`, `1h`, `7d`) and parsed once, when
/// the configuration is read: a setting that is not a duration is refused there, named by its
/// path, and every use reads a [`std::time::Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(std::time::Duration);

impl ConfigDuration {
    pub const fn from_secs(secs: u64) -> ConfigDuration {
        ConfigDuration(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> ConfigDuration {
        ConfigDuration(std::time::Duration::from_millis(millis))
    }

    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// In nanoseconds (saturating at `i64::MAX`, some 292 years).
    pub fn as_nanos(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<ConfigDuration, String> {
        parse_duration_ns(text)
            .filter(|ns| *ns >= 0)
            .map(|ns| ConfigDuration(std::time::Duration::from_nanos(ns as u64)))
            .ok_or_else(|| format!("{text:?} is not a duration (e.g. 500ms, 30s, 5m, 1h, 7d)"))
    }
}

impl std::fmt::Display for ConfigDuration {
    /// The largest unit that writes it whole: `90s` is `90s`, `300s` is `5m`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ns = self.as_nanos();
        let units = [
            ("w", 7 * NANOS_PER_DAY),
            ("d", NANOS_PER_DAY),
            ("h", 3600 * NANOS_PER_SECOND),
            ("m", 60 * NANOS_PER_SECOND),
            ("s", NANOS_PER_SECOND),
            ("ms", 1_000_000),
            ("us", 1_000),
        ];
        let (unit, size) = units
            .into_iter()
            .find(|(_, size)| ns != 0 && ns % size == 0)
            .unwrap_or(("ns", 1));
        write!(f, "{}{unit}", ns / size)
    }
}

impl serde::Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn renders_and_parses_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let t = parse_rfc3339("2026-11-23T10:00:00.5Z").unwrap();
        assert_eq!(rfc3339(t), "2026-11-23T10:00:00.500000000Z");
        assert_eq!(
            parse_rfc3339("2026-11-23T12:00:00+02:00"),
            parse_rfc3339("2026-11-23T10:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2026-11-23"),
            parse_rfc3339("2026-11-23T00:00:00Z")
        );
        assert_eq!(parse_rfc3339("2026-13-01"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    /// Found by the metric-query fuzz target: a bare date past the range of i64 nanoseconds
    /// overflowed instead of being refused.
    #[test]
    fn instants_outside_i64_nanoseconds_are_refused() {
        assert_eq!(parse_rfc3339("4052-11-01"), None);
        assert_eq!(parse_rfc3339("1012-11-23"), None);
        assert_eq!(parse_rfc3339("4052-11-01T00:00:00Z"), None);
        assert!(parse_rfc3339("2262-04-11").is_some());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration_ns("5m"), Some(300 * NANOS_PER_SECOND));
        assert_eq!(parse_duration_ns("250ms"), Some(250_000_000));
        assert_eq!(parse_duration_ns("5 parsecs"), None);
        assert_eq!(parse_duration_ns("m"), None);
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips(ts in -2_000_000_000_000_000_000i64..4_000_000_000_000_000_000i64) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(ts)), Some(ts));
        }

        #[test]
        fn civil_days_round_trip(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn config_durations_read_and_write_as_text() {
        let d: ConfigDuration = "5m".parse().unwrap();
        assert_eq!(d.get(), std::time::Duration::from_secs(300));
        assert_eq!(d.to_string(), "5m");
        assert_eq!(ConfigDuration::from_millis(500).to_string(), "500ms");
        assert_eq!(ConfigDuration::from_secs(90).to_string(), "90s");
        assert_eq!(ConfigDuration::from_secs(0).to_string(), "0ns");
        assert!(
            "soon"
                .parse::<ConfigDuration>()
                .unwrap_err()
                .contains("\"soon\"")
        );
        let json = serde_json::to_string(&ConfigDuration::from_secs(3600)).unwrap();
        assert_eq!(json, "\"1h\"");
        let back: ConfigDuration = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ConfigDuration::from_secs(3600));
    }
}
