//! Reading the user's files: a JSON syntax error names the file, the line and the column, and
//! shows the line with a caret under the spot.

use std::path::Path;

use serde_json::Value;

use crate::error::LauncherError;

/// Reads and parses a JSON file; `what` says what the file is for ("job file").
///
/// # Errors
/// [`LauncherError`] (input) when the file cannot be read or is not JSON.
pub fn read_json_file(path: &Path, what: &str) -> Result<Value, LauncherError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| LauncherError::input(format!("cannot read {what} {}: {e}", path.display())))?;
    parse_json(&text, &path.display().to_string(), what)
}

/// Parses JSON text; `origin` names it in messages (a path, or `<stdin>`).
///
/// # Errors
/// [`LauncherError`] (input) with `origin:line:column`, the parser's reason and the line itself.
pub fn parse_json(text: &str, origin: &str, what: &str) -> Result<Value, LauncherError> {
    serde_json::from_str(text).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let full = e.to_string();
        let reason = full
            .strip_suffix(&format!(" at line {line} column {column}"))
            .unwrap_or(&full);
        let mut message =
            format!("{origin}:{line}:{column}: the {what} is not valid JSON: {reason}");
        if let Some(src) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) {
            let shown: String = src.chars().take(200).collect();
            let caret_at = column.saturating_sub(1).min(shown.chars().count());
            let pad: String = shown
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            message.push_str(&format!("\n    {shown}\n    {pad}^"));
        }
        LauncherError::input(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_has_line_column_and_caret() {
        let text = "{\n  \"name\": \"a\",\n  \"cpus\": 1,,\n}\n";
        let e = parse_json(text, "job.json", "job file").unwrap_err();
        assert!(
            e.message
                .starts_with("job.json:3:13: the job file is not valid JSON"),
            "{}",
            e.message
        );
        assert!(e.message.contains("\"cpus\": 1,,"), "{}", e.message);
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn missing_file() {
        let e = read_json_file(Path::new("/nonexistent/job.json"), "job file").unwrap_err();
        assert!(e.message.contains("/nonexistent/job.json"), "{}", e.message);
    }
}
