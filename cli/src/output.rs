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
        assert_eq!(time_ms(0), "1970-01-01T00:00:00Z");
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
