//! Text as ZooKeeper's Java tools print it: times (English locale, the machine's time
//! zone) and strings as jute's `toString` writes them.

/// Formats milliseconds since the epoch in the local time zone with a `strftime` pattern;
/// a time outside what the calendar holds prints as its number.
fn local(ms: i64, pattern: &str) -> String {
    let Ok(timestamp) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let zoned = timestamp.to_zoned(jiff::tz::TimeZone::system());
    zoned.strftime(pattern).to_string()
}

/// Java's `Date.toString`: `Thu Jan 01 00:00:00 UTC 1970`.
pub(crate) fn java_date(ms: i64) -> String {
    local(ms, "%a %b %d %H:%M:%S %Z %Y")
}

/// `DateFormat.getDateTimeInstance(SHORT, LONG)`: `11/25/26, 2:43:49 PM UTC`.
#[allow(dead_code)] // The shell prints only `Date.toString`.
pub(crate) fn short_long(ms: i64) -> String {
    local(ms, "%-m/%-d/%y, %-I:%M:%S %p %Z")
}

/// `DateFormat.getDateTimeInstance()` (MEDIUM, MEDIUM): `Nov 25, 2026, 2:43:49 PM`.
#[allow(dead_code)] // The shell prints only `Date.toString`.
pub(crate) fn medium(ms: i64) -> String {
    local(ms, "%b %-d, %Y, %-I:%M:%S %p")
}

/// A string as jute's `toString` (`ToStringOutputArchive`) writes it: a leading `'`, and
/// `\0`, newlines, `,`, `}` and `%` escaped.
pub(crate) fn jute_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}
