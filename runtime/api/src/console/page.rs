//! The frame every console page shares: head, navigation, the signed-in
//! user, and the small formatting helpers the pages have in common.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::session::Viewer;

/// The sections of the navigation, with their paths.
const SECTIONS: [(&str, &str); 6] = [
    ("Anomalies", "/ui/anomalies"),
    ("Agents", "/ui/agents"),
    ("Runs", "/ui/runs"),
    ("Models", "/ui/models"),
    ("Exports", "/ui/exports"),
    ("Notifications", "/ui/notifications"),
];

/// The section of an error page: it shows the navigation (a visitor
/// without a session who follows it is sent to sign in).
pub(crate) const ERROR_SECTION: &str = "error";

/// A whole page: `section` is the navigation entry it belongs to, `refresh_s`
/// reloads it without script (live pages), and `body` is the main content.
pub(crate) fn page(
    title: &str,
    viewer: Option<&Viewer>,
    section: &str,
    refresh_s: Option<u32>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · MCP console" }
                link rel="stylesheet" href="/ui/assets/console.css";
                @if let Some(seconds) = refresh_s {
                    noscript { meta http-equiv="refresh" content=(seconds); }
                }
                script src="/ui/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "MCP" }
                    @if viewer.is_some() || section == ERROR_SECTION {
                        nav aria-label="Sections" {
                            ul {
                                @for (name, path) in SECTIONS {
                                    li {
                                        @if name == section {
                                            a href=(path) aria-current="page" { (name) }
                                        } @else {
                                            a href=(path) { (name) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(viewer) = viewer {
                        div.who {
                            span { (viewer.caller.tenant) " · " (viewer.caller.role.name()) }
                            form method="post" action="/ui/sign-out" {
                                (csrf_field(viewer))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field that proves a form came from one of this session's pages.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A button that posts to `action`, as a form of its own.
pub(crate) fn post_button(viewer: &Viewer, action: &str, label: &str, hidden: &[(&str, &str)]) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(viewer))
            @for (name, value) in hidden {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" { (label) }
        }
    }
}

/// As [`post_button`], with the button in `class` (`secondary` for an
/// action that takes something away).
pub(crate) fn post_button_styled(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A time in ms since the epoch as UTC, to the second.
pub(crate) fn time(ms: i64) -> String {
    // RFC 3339 ends with the year 9999.
    const LAST_MS: u64 = 253_402_300_799_999;
    let Ok(ms) = u64::try_from(ms) else {
        return format!("{ms} ms");
    };
    if ms > LAST_MS {
        return format!("{ms} ms");
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string().replace('T', " ").replace('Z', " UTC")
}

/// A `<time>` element for `ms`, machine-readable and in UTC.
pub(crate) fn time_element(ms: i64) -> Markup {
    let text = time(ms);
    let machine = text.trim_end_matches(" UTC").replace(' ', "T") + "Z";
    html! { time datetime=(machine) { (text) } }
}

/// A `datetime-local` field's value (`2026-12-03T12:30`, read as UTC) in ms.
pub(crate) fn parse_local_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let full = if text.len() == 16 { format!("{text}:00") } else { text.to_string() };
    let at = humantime::parse_rfc3339_weak(&full).ok()?;
    at.duration_since(std::time::UNIX_EPOCH).ok().and_then(|d| i64::try_from(d.as_millis()).ok())
}

/// A severity as a badge whose colour and text both say it.
pub(crate) fn severity_badge(severity: &str) -> Markup {
    let class = match severity {
        "critical" | "high" | "medium" | "low" | "info" => severity,
        _ => "other",
    };
    html! { span class={ "badge sev-" (class) } { (severity) } }
}

/// Text that may hold anything (a guest's reason, a log's field) with its
/// control characters shown, not obeyed.
pub(crate) fn visible(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if (c.is_control() && c != '\n' && c != '\t') || bidi { char::REPLACEMENT_CHARACTER } else { c }
        })
        .collect()
}

/// A JSON object's text pretty-printed, or the text as it is.
pub(crate) fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| text.to_string())
}

/// What an action just did, by the code its redirect carries (`?done=`):
/// fixed sentences only, so a link cannot put words on the page.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    pub done: String,
}

impl Done {
    pub(crate) fn render(&self) -> Markup {
        let said = match self.done.as_str() {
            "run-started" => "The run is queued: it is in the table below, which follows it as it goes.",
            "cancel-requested" => {
                "Cancel requested: the run stops after the batch it is on. A run about to finish may still complete."
            }
            "agent-enabled" => "The agent is enabled for this tenant: runs may use it.",
            "agent-disabled" => "The agent is disabled for this tenant: no new run uses it.",
            "model-activated" => "The version is active: the next batch of every run uses it.",
            "model-rolled-back" => "The version in force before the current one is active again.",
            _ => return html! {},
        };
        html! { p.notice role="status" { (said) } }
    }
}

/// Nothing to show yet, said plainly.
pub(crate) fn empty(message: &str) -> Markup {
    html! { p.empty { (message) } }
}

/// Raw markup the console made itself (an SVG chart).
pub(crate) fn trusted(markup: String) -> Markup {
    PreEscaped(markup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_round_trip_through_the_form() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(parse_local_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_local_time("not a time"), None);
        assert_eq!(parse_local_time(""), None);
        // Past the year 9999 (a chart slot of a very long range): shown,
        // not a panic.
        assert_eq!(time(i64::MAX), format!("{} ms", i64::MAX));
        assert_eq!(time(253_402_300_799_999), "9999-12-31 23:59:59 UTC");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(visible("a\u{1b}[31mb\u{202e}c\n"), "a\u{fffd}[31mb\u{fffd}c\n");
    }
}
