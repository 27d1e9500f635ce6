//! The `Date` header value (IMF-fixdate), formatted at most once a second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

struct Cached {
    second: u64,
    text: [u8; DATE_LEN],
}

thread_local! {
    // A thread-local cache needs no lock or atomic: each runtime worker formats
    // the date once a second and copies 29 bytes per response after that.
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, text: [0; DATE_LEN] })
    };
}

/// Appends the current date as an IMF-fixdate to `out`.
pub(crate) fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != now {
            cache.text = format_imf_fixdate(now);
            cache.second = now;
        }
        out.extend_from_slice(&cache.text);
    });
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110 5.6.7).
pub(crate) fn format_imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put2(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let year = year.clamp(0, 9999) as u32;
    put2(&mut out[12..14], year / 100);
    put2(&mut out[14..16], year % 100);
    put2(&mut out[17..19], (rem / 3600) as u32);
    put2(&mut out[20..22], (rem / 60 % 60) as u32);
    put2(&mut out[23..25], (rem % 60) as u32);
    out
}

/// Formats a time as RFC 3339 / ISO 8601 in UTC with milliseconds,
/// e.g. `2026-11-25T03:41:36.123Z`.
pub(crate) fn format_rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

fn put2(out: &mut [u8], n: u32) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01
/// (the proleptic Gregorian calendar, by eras of 400 years).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(784_111_777_123);
        assert_eq!(format_rfc3339(t), "1994-11-06T08:49:37.123Z");
    }

    #[test]
    fn known_dates() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_568_399, "Wed, 25 Nov 2026 00:59:59 GMT"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                std::str::from_utf8(&format_imf_fixdate(*secs)).unwrap(),
                *want
            );
        }
    }

    #[test]
    fn write_date_appends_29_bytes() {
        let mut out = b"Date: ".to_vec();
        write_date(&mut out);
        assert_eq!(out.len(), 6 + DATE_LEN);
        assert!(out.ends_with(b" GMT"));
    }
}
