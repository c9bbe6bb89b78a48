//! The human progress display: download bars on a terminal, and warnings as
//! `oci2wsl: warning:` lines that never tear a bar.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci2wsl::events::{Event, Observer, Phase};
use oci2wsl::terminal::printable;
use std::collections::HashMap;
use std::sync::Mutex;

/// Draws bars (when `bars` is set: stderr is a terminal and not `--quiet`) and prints
/// warnings, also with `--quiet`, as podman and skopeo do: `-q` silences progress and the
/// summary, not what the user must know.
pub struct Display {
    bars: Option<Mutex<Bars>>,
}

struct Bars {
    multi: MultiProgress,
    total: Option<ProgressBar>,
    layers: HashMap<usize, ProgressBar>,
    sizes: HashMap<usize, Option<u64>>,
    digests: HashMap<usize, String>,
}

impl Display {
    pub fn new(quiet: bool, bars: bool) -> Display {
        Display {
            bars: (bars && !quiet).then(|| {
                Mutex::new(Bars {
                    multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                    total: None,
                    layers: HashMap::new(),
                    sizes: HashMap::new(),
                    digests: HashMap::new(),
                })
            }),
        }
    }

    /// Prints a line above the bars (or plainly, without bars).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(bars) => bars.lock().unwrap().multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Removes every bar (before the summary or an error).
    pub fn clear(&self) {
        if let Some(bars) = &self.bars {
            let mut bars = bars.lock().unwrap();
            for (_, bar) in bars.layers.drain() {
                bar.finish_and_clear();
            }
            if let Some(total) = bars.total.take() {
                total.finish_and_clear();
            }
            let _ = bars.multi.clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

impl Observer for Display {
    fn event(&self, event: &Event) {
        match event {
            Event::Warning { message } => {
                self.println(&format!("oci2wsl: warning: {}", printable(message)));
            }
            Event::Resolved(resolved) => {
                if let Some(bars) = &self.bars {
                    let mut bars = bars.lock().unwrap();
                    for l in &resolved.layers {
                        bars.sizes.insert(l.index, l.size);
                        if let Some(d) = &l.digest {
                            let hex = d.split_once(':').map(|(_, h)| h).unwrap_or(d);
                            bars.digests.insert(l.index, hex.chars().take(12).collect());
                        }
                    }
                }
            }
            Event::Progress {
                phase: Phase::Download,
                layer: Some(layer),
                done,
                total,
            } => {
                let Some(bars) = &self.bars else { return };
                let mut guard = bars.lock().unwrap();
                let bars = &mut *guard;
                if bars.total.is_none() {
                    let sum: u64 = bars.sizes.values().flatten().sum();
                    let bar = bars.multi.add(ProgressBar::new(sum));
                    bar.set_style(style(
                        "{msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    ));
                    bar.set_message(format!("{} layers", bars.sizes.len()));
                    bars.total = Some(bar);
                }
                let total_bar = bars.total.clone().expect("just made");
                let name = bars.digests.get(layer).cloned().unwrap_or_default();
                let bar = bars.layers.entry(*layer).or_insert_with(|| {
                    let bar = bars
                        .multi
                        .insert_before(&total_bar, ProgressBar::new(total.unwrap_or(0)));
                    bar.set_style(style(
                        "{msg:>14} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    ));
                    bar.set_message(name);
                    bar
                });
                let before = bar.position();
                bar.set_position(*done);
                total_bar.inc(done.saturating_sub(before));
            }
            Event::LayerDone {
                phase: Phase::Download,
                layer,
                ..
            } => {
                let Some(bars) = &self.bars else { return };
                let mut bars = bars.lock().unwrap();
                if let Some(bar) = bars.layers.remove(layer) {
                    bar.finish_and_clear();
                }
                if let Some(total) = &bars.total {
                    if total.length().is_some_and(|len| total.position() >= len) {
                        total.finish_and_clear();
                    }
                }
            }
            _ => {}
        }
    }
}
