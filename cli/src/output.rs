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

/// An instant in milliseconds since the epoch as RFC 3339 UTC, seconds precision.
pub fn time_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.round(jiff::Unit::Second).unwrap_or(t).to_string(),
        Err(_) => ms.to_string(),
    }
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

/// Who holds an order: `controller`, `agent a1`, `attaching a1`, `detaching a1`.
pub fn holder(v: Option<&Json>) -> String {
    match v.and_then(Json::as_object).and_then(|o| o.iter().next()) {
        Some((side, Json::Null)) => side.clone(),
        Some((side, who)) => format!("{side} {}", cell(Some(who))),
        None => cell(v),
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
        assert_eq!(time_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(time_ms_precise(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(cell(Some(&json!("a"))), "a");
        assert_eq!(cell(Some(&json!(3))), "3");
        assert_eq!(cell(Some(&Json::Null)), "");
        assert_eq!(holder(Some(&json!({"controller": null}))), "controller");
        assert_eq!(holder(Some(&json!({"attaching": "a1"}))), "attaching a1");
    }
}
