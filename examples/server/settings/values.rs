//! How setting values are written: durations, booleans, rates, origins,
//! statement kinds.

use super::*;

/// `off`, or `RATE[:BURST]` requests per second (burst default: twice the rate).
pub(super) fn parse_rate(v: &str) -> Result<Option<(f64, u32)>, String> {
    if v == "off" {
        return Ok(None);
    }
    let (rate, burst) = v.split_once(':').unwrap_or((v, ""));
    let rate: f64 = match rate.parse() {
        Ok(r) if r > 0.0 && f64::is_finite(r) => r,
        _ => {
            return Err(format!(
                "{rate:?} is not a positive number of requests per second"
            ));
        }
    };
    let burst = if burst.is_empty() {
        (rate * 2.0).ceil().min(f64::from(u32::MAX)) as u32
    } else {
        match burst.parse::<u32>() {
            Ok(b) if b > 0 => b,
            _ => return Err(format!("burst {burst:?} is not a positive whole number")),
        }
    };
    Ok(Some((rate, burst)))
}

/// Statement kinds, comma-separated.
pub(super) fn parse_allow(v: &str) -> Result<SqlGuard, String> {
    let kinds = v
        .split(',')
        .map(|k| StatementKind::parse(k).ok_or_else(|| format!("{k:?} is not a statement kind")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SqlGuard::allowing(kinds))
}

pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean (true/false, 1/0)")),
    }
}

/// `scheme://host[:port]`, as browsers send in `Origin`.
pub(super) fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or_else(|| format!("{origin:?} is not an origin (http:// or https://)"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{origin:?} is not an origin (scheme://host[:port], no path)"
        ));
    }
    Ok(())
}

/// `30s`, `500ms`, `5m`, `1h`, or a bare number of seconds.
pub(super) fn parse_duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration (30s, 500ms, 5m, 1h)");
    let split = v
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

pub(super) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if secs % 3600 == 0 && secs > 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 && secs > 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}
