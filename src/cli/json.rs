//! `--progress=json`: every event of a run as one JSON object per line on stderr, for
//! front ends (docs/events.md is the schema).
//!
//! Each line is written with one `write_all` under a lock, so lines from the download
//! threads never interleave. Progress is thinned to [`MIN_INTERVAL`] per counter; the
//! last value a counter reached is always sent before anything that follows it.

use oci2wsl::error::Error;
use oci2wsl::events::{Event, Observer, Phase};
use oci2wsl::output::Destination;
use oci2wsl::pipeline::Summary;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The schema's version, the `v` of every line. Adding a field or an event keeps it;
/// removing or changing one bumps it.
pub const VERSION: u64 = 1;

/// At most this often per counter (a layer's download, a layer's index pass, the emit pass):
/// ten lines a second is smooth for a bar and cheap for a reader.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

type Counter = (Phase, Option<usize>);

pub struct JsonEvents {
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    last_sent: HashMap<Counter, Instant>,
    /// Progress held back by the throttle, sent before the next other event of its counter.
    held: HashMap<Counter, String>,
}

impl JsonEvents {
    pub fn stderr() -> JsonEvents {
        JsonEvents::to(Box::new(std::io::stderr()))
    }

    pub fn to(out: Box<dyn Write + Send>) -> JsonEvents {
        JsonEvents {
            state: Mutex::new(State {
                out,
                last_sent: HashMap::new(),
                held: HashMap::new(),
            }),
        }
    }

    /// The last line of a successful run.
    pub fn summary(&self, summary: &Summary, destination: &Destination) {
        let output = match destination {
            Destination::File { path, .. } => Value::from(path.display().to_string()),
            Destination::Stdout if summary.imported.is_some() => Value::Null,
            Destination::Stdout => Value::from("-"),
        };
        let imported = summary.imported.as_ref().map(|i| {
            json!({
                "name": i.name,
                "dir": i.dir.display().to_string(),
                "wsl_said": i.wsl_said,
            })
        });
        let line = json!({
            "image": summary.image,
            "index_digest": summary.index_digest,
            "manifest_digest": summary.manifest_digest,
            "config_digest": summary.config_digest,
            "platform": summary.platform,
            "layers": summary.stats.layers,
            "paths": summary.stats.paths_written,
            "compressed_bytes": summary.stats.compressed_bytes,
            "tar_bytes": summary.tar_bytes,
            "bytes_out": summary.bytes_out,
            "output": output,
            "import": imported,
            "wsl_set": summary.wsl.set,
            "wsl_warnings": summary.wsl.warnings,
            "elapsed_ms": summary.elapsed.as_millis() as u64,
        });
        self.send("summary", line, true);
    }

    /// The last line of a failed run.
    pub fn error(&self, error: &Error) {
        self.error_line(error.code(), &error.to_string());
    }

    /// An error line for failures found before a run exists (the command line itself).
    pub fn error_line(&self, code: &str, message: &str) {
        self.send("error", json!({"code": code, "message": message}), true);
    }

    /// Writes `{"v":1,"event":NAME,…fields}`; `flush_held` first sends every held progress
    /// value (so the stream's last word on a counter is its final value).
    fn send(&self, name: &str, fields: Value, flush_held: bool) {
        let mut state = self.state.lock().unwrap();
        if flush_held {
            let held: Vec<String> = state.held.drain().map(|(_, v)| v).collect();
            for line in held {
                state.write(line);
            }
        }
        state.write(line(name, fields));
    }
}

/// `{"v":1,"event":NAME,…fields}`: the version and the name lead, so a reader (or a human
/// skimming a log) sees what a line is before its fields.
fn line(name: &str, fields: Value) -> String {
    let head = format!("{{\"v\":{VERSION},\"event\":{}", Value::from(name));
    match fields {
        Value::Object(fields) if !fields.is_empty() => {
            let rest = Value::Object(fields).to_string();
            format!("{head},{}", &rest[1..])
        }
        _ => format!("{head}}}"),
    }
}

/// serde_json escapes only U+0000 to U+001F inside strings; DEL and the C1 controls (CSI is
/// U+009B) would reach a terminal a person watches the stream on. They occur only inside
/// strings, where `\uXXXX` means the same character, so the JSON parses to the same value.
/// A raw line break can only be the layout of pretty-printed JSON and stays.
pub fn escape_controls(text: String) -> String {
    let escaped = |c: char| c.is_control() && c != '\n';
    if !text.chars().any(escaped) {
        return text;
    }
    text.chars()
        .map(|c| {
            if escaped(c) {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl State {
    fn write(&mut self, text: String) {
        let mut text = escape_controls(text);
        text.push('\n');
        // A front end that closed its end of the pipe no longer listens: nothing to do.
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }
}

impl Observer for JsonEvents {
    fn event(&self, event: &Event) {
        match event {
            Event::Resolved(r) => {
                let layers: Vec<Value> = r
                    .layers
                    .iter()
                    .map(|l| {
                        json!({
                            "index": l.index,
                            "digest": l.digest,
                            "diff_id": l.diff_id,
                            "size": l.size,
                            "media_type": l.media_type,
                        })
                    })
                    .collect();
                self.send(
                    "resolved",
                    json!({
                        "image": r.image,
                        "index_digest": r.index_digest,
                        "manifest_digest": r.manifest_digest,
                        "config_digest": r.config_digest,
                        "platform": r.platform,
                        "layers": layers,
                        "download_bytes": r.download_bytes(),
                    }),
                    false,
                );
            }
            Event::Progress {
                phase,
                layer,
                done,
                total,
            } => {
                let key = (*phase, *layer);
                let value = line(
                    "progress",
                    json!({"phase": phase.name(), "layer": layer, "done": done, "total": total}),
                );
                let now = Instant::now();
                let mut state = self.state.lock().unwrap();
                let due = state
                    .last_sent
                    .get(&key)
                    .is_none_or(|t| now.duration_since(*t) >= MIN_INTERVAL);
                if due || Some(*done) == *total {
                    state.held.remove(&key);
                    state.last_sent.insert(key, now);
                    state.write(value);
                } else {
                    state.held.insert(key, value);
                }
            }
            Event::LayerDone {
                phase,
                layer,
                bytes,
            } => {
                let key = (*phase, Some(*layer));
                let mut state = self.state.lock().unwrap();
                if let Some(held) = state.held.remove(&key) {
                    state.write(held);
                }
                state.write(line(
                    "layer-done",
                    json!({"phase": phase.name(), "layer": layer, "bytes": bytes}),
                ));
            }
            Event::EmitStarted { tar_bytes, paths } => self.send(
                "emit-started",
                json!({"tar_bytes": tar_bytes, "paths": paths}),
                false,
            ),
            Event::Retry {
                what,
                attempt,
                reason,
                wait,
            } => self.send(
                "retry",
                json!({"what": what, "attempt": attempt, "reason": reason,
                       "wait_ms": wait.as_millis() as u64}),
                false,
            ),
            Event::Request {
                method,
                url,
                status,
                elapsed,
            } => self.send(
                "request",
                json!({"method": method, "url": url, "status": status,
                       "elapsed_ms": elapsed.as_millis() as u64}),
                false,
            ),
            Event::ImportStarted { name } => {
                self.send("import-started", json!({ "name": name }), true)
            }
            Event::ImportFinished { name, dir } => self.send(
                "import-finished",
                json!({"name": name, "dir": dir.display().to_string()}),
                true,
            ),
            Event::Warning { message } => {
                self.send("warning", json!({ "message": message }), false)
            }
            // An event added to the library later: named by its debug form until the schema
            // gives it fields, so a front end sees it rather than nothing.
            other => {
                let debug = format!("{other:?}");
                let name = debug
                    .split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or("unknown")
                    .to_lowercase();
                self.send("other", json!({"kind": name}), false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buffer: &Buffer) -> Vec<Value> {
        String::from_utf8(buffer.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn progress(done: u64) -> Event {
        Event::Progress {
            phase: Phase::Download,
            layer: Some(0),
            done,
            total: Some(1000),
        }
    }

    #[test]
    fn a_burst_of_progress_is_thinned_and_its_last_value_still_arrives() {
        let buffer = Buffer::default();
        let events = JsonEvents::to(Box::new(buffer.clone()));
        for done in 1..=500 {
            events.event(&progress(done));
        }
        events.event(&Event::LayerDone {
            phase: Phase::Download,
            layer: 0,
            bytes: 500,
        });
        let lines = lines(&buffer);
        let dones: Vec<u64> = lines
            .iter()
            .filter(|l| l["event"] == "progress")
            .map(|l| l["done"].as_u64().unwrap())
            .collect();
        assert!(dones.len() < 500, "{} progress lines", dones.len());
        assert_eq!(dones.last(), Some(&500));
        assert_eq!(lines.last().unwrap()["event"], "layer-done");
    }

    #[test]
    fn the_final_value_of_a_counter_is_never_held_back() {
        let buffer = Buffer::default();
        let events = JsonEvents::to(Box::new(buffer.clone()));
        events.event(&progress(1));
        events.event(&progress(1000));
        let dones: Vec<u64> = lines(&buffer)
            .iter()
            .map(|l| l["done"].as_u64().unwrap())
            .collect();
        assert_eq!(dones, [1, 1000]);
    }

    #[test]
    fn no_control_character_reaches_the_stream_and_the_value_survives() {
        let buffer = Buffer::default();
        let events = JsonEvents::to(Box::new(buffer.clone()));
        let hostile = "a\x1b[2J\u{9b}31m\x7f\nb";
        events.event(&Event::Warning {
            message: hostile.into(),
        });
        let raw = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(
            !raw.trim_end_matches('\n').chars().any(char::is_control),
            "{raw:?}"
        );
        assert_eq!(lines(&buffer)[0]["message"], hostile);
    }

    #[test]
    fn every_line_carries_the_version_and_the_event_name() {
        let buffer = Buffer::default();
        let events = JsonEvents::to(Box::new(buffer.clone()));
        events.event(&Event::Warning {
            message: "w".into(),
        });
        events.error_line("usage", "bad flag");
        let lines = lines(&buffer);
        assert_eq!(
            lines[0],
            json!({"v": 1, "event": "warning", "message": "w"})
        );
        assert_eq!(
            lines[1],
            json!({"v": 1, "event": "error", "code": "usage", "message": "bad flag"})
        );
    }
}
