//! Progress of a long command for a person: a bar on a terminal, and a
//! plain line every few seconds when stderr is a file or a pipe (a bar's
//! redraws would fill a log with control codes).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    last_line: Instant,
}

impl Progress {
    /// Progress of `what`: a bar when `total` is known, else a spinner.
    pub fn new(what: &str, total: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let template = match total {
                Some(_) => "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
                None => "{spinner} {prefix} [{elapsed_precise}] {msg}",
            };
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, what: what.to_string(), last_line: Instant::now() }
    }

    /// `done` of `total` (when known), with `message` beside it.
    pub fn update(&mut self, done: u64, total: Option<u64>, message: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                if let Some(total) = total {
                    bar.set_length(total.max(1));
                }
                bar.set_position(done);
                bar.set_message(message());
            }
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                match total {
                    Some(total) if total > 0 => eprintln!(
                        "{}: {:.0}% ({})",
                        self.what,
                        done.min(total) as f64 * 100.0 / total as f64,
                        message()
                    ),
                    _ => eprintln!("{}: {}", self.what, message()),
                }
            }
            None => {}
        }
    }

    /// A run's entries and anomalies so far (its total is not known).
    pub fn show_run(&mut self, report: &mcp_engine::pipeline::RunReport) {
        self.update(report.entries, None, || format!("{} entries, {} anomalies", report.entries, report.anomalies));
    }

    /// Removes the bar; the command prints its own summary after.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
