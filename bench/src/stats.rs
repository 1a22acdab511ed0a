//! Small statistics for benchmark figures, and JSON lines with their keys in a fixed order.

use serde_json::Value as Json;

/// The `q` quantile (0 ≤ q ≤ 1) of `values` by the nearest rank on the sorted values;
/// `None` when there are none. NaNs sort last.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let q = q.clamp(0.0, 1.0);
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

/// `value` rounded to `digits` decimals, for JSON output.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// One JSON object with its keys in the given order (serde_json's maps sort them).
pub fn json_line<K: AsRef<str>>(fields: &[(K, Json)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{value}", Json::from(key.as_ref())))
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_lines_keep_the_key_order() {
        let line = json_line(&[("name", json!("e2e")), ("n", json!(2)), ("a", Json::Null)]);
        assert_eq!(line, r#"{"name":"e2e","n":2,"a":null}"#);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["n"], 2);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(51.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn rounds_to_decimals() {
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(round(2.5, 0), 3.0);
    }
}
