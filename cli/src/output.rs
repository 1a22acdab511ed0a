//! Human output (tables, times, spinners) and JSON output.

use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value as Json;
use std::time::Duration;

/// A table with the given header, wrapped to the terminal when there is one.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_style(presets::UTF8_FULL_CONDENSED.with_rounded_corners())
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

/// Prints a JSON value, pretty.
pub fn print_json(v: &Json) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// An instant for a table: the local date and time to the second (`2026-12-07 14:03:09`),
/// with the zone's abbreviation when it is not UTC; epoch ms stay for `--json`.
pub fn local_time(ms: i64) -> String {
    local_time_in(ms, &jiff::tz::TimeZone::system())
}

fn local_time_in(ms: i64, tz: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => {
            let z = t.to_zoned(tz.clone());
            let abbreviation = z.time_zone().to_offset_info(t).abbreviation().to_string();
            let text = z.strftime("%Y-%m-%d %H:%M:%S").to_string();
            if abbreviation == "UTC" || abbreviation.is_empty() {
                text
            } else {
                format!("{text} {abbreviation}")
            }
        }
        Err(_) => ms.to_string(),
    }
}

/// A duration for a table: `850ms`, `12s`, `3m05s`, `2h10m`, `3d4h`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{}h", s / 86400, s / 3600 % 24),
    }
}

/// A text with every instant in it written as epoch ms (13 digits, 2001..2286) shown as
/// [`local_time`]: the model's words say `processing since 1796623200000`.
pub fn humanize_instants(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let digits_len = rest[start..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - start);
        let digits = &rest[start..start + digits_len];
        out.push_str(&rest[..start]);
        match digits.parse::<i64>() {
            Ok(ms) if digits_len == 13 => out.push_str(&local_time(ms)),
            _ => out.push_str(digits),
        }
        rest = &rest[start + digits_len..];
    }
    out.push_str(rest);
    out
}

/// The same with milliseconds.
pub fn time_ms_precise(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => ms.to_string(),
    }
}

/// A JSON value for a table cell: strings bare, null empty, the rest as JSON.
pub fn cell(v: Option<&Json>) -> String {
    match v {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Who holds an order (the published `holder` of an order view, `{"type": "agent", "agent":
/// "a1"}`): `controller`, `agent a1`, `attaching a1`, `detaching a1`.
pub fn holder(v: Option<&Json>) -> String {
    use ordo_model::order::Holder;
    match v.map(|v| ordo_api::json::from_value::<Holder>(v.clone())) {
        Some(Ok(Holder::Controller)) => "controller".to_owned(),
        Some(Ok(Holder::Attaching(a))) => format!("attaching {a}"),
        Some(Ok(Holder::Agent(a))) => format!("agent {a}"),
        Some(Ok(Holder::Detaching(a))) => format!("detaching {a}"),
        Some(Err(_)) | None => cell(v),
    }
}

/// A spinner on stderr (hidden when stderr is not a terminal).
pub fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_and_times() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            local_time_in(1_796_623_200_000, &berlin),
            "2026-12-07 07:00:00 CET"
        );
        assert_eq!(
            local_time_in(1_796_623_200_000, &jiff::tz::TimeZone::UTC),
            "2026-12-07 06:00:00"
        );
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_000), "12s");
        assert_eq!(duration(185_000), "3m05s");
        assert_eq!(duration(7_800_000), "2h10m");
        assert_eq!(duration(273_600_000), "3d4h");
        let text = humanize_instants("processing since 1796623200000 (pgid 42)");
        assert!(text.starts_with("processing since 2026-12-0"), "{text}");
        assert!(text.ends_with("(pgid 42)"), "{text}");
        assert_eq!(time_ms_precise(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(cell(Some(&json!("a"))), "a");
        assert_eq!(cell(Some(&json!(3))), "3");
        assert_eq!(cell(Some(&Json::Null)), "");
        assert_eq!(holder(Some(&json!({"type": "controller"}))), "controller");
        assert_eq!(
            holder(Some(&json!({"type": "attaching", "attaching": "a1"}))),
            "attaching a1"
        );
        assert_eq!(holder(Some(&json!("odd"))), "odd");
    }
}
