//! The human progress display: one display for the whole run (reading or downloading the
//! layers, writing the tar, importing into WSL), and warnings and retries as lines that
//! never tear a bar.
//!
//! The bars are redrawn for the terminal's width at every update, so a resize (down to
//! 50 columns and below) reflows them instead of leaving wrapped fragments in the scrollback;
//! indicatif clears what it drew by the width the terminal has now.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use oci2wsl::events::{Event, Observer, Phase};
use oci2wsl::pipeline::human;
use oci2wsl::terminal::printable;
use std::sync::Mutex;
use std::time::Duration;

/// How progress is shown (`--progress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Bars when standard error is a terminal, else nothing but the summary.
    #[default]
    Auto,
    /// No bars: a line for each phase, for logs.
    Plain,
    /// No progress at all (warnings and the summary still appear).
    None,
}

/// Shows the progress of a run on standard error. Warnings are printed in every mode, also
/// with `--quiet`, as podman and skopeo do: `-q` silences progress and the summary, not what
/// the user must know.
pub struct Display {
    kind: Kind,
}

enum Kind {
    Silent,
    Plain(Mutex<PlainState>),
    Bars(Mutex<Bars>),
}

#[derive(Default)]
struct PlainState {
    downloading: bool,
    reading: bool,
    writing: bool,
}

/// What the terminal is wide enough for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Width {
    /// 96 columns and more: sizes, rate, ETA and the compressed output.
    Full,
    /// 64 to 95: sizes, rate and ETA.
    Medium,
    /// Less: the percentage and the ETA.
    Narrow,
}

impl Width {
    fn of_terminal() -> Width {
        let (_, columns) = console::Term::stderr().size();
        match columns {
            96.. => Width::Full,
            64..=95 => Width::Medium,
            _ => Width::Narrow,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Reading,
    Downloading,
    Writing,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Reading => "reading",
            Stage::Downloading => "downloading",
            Stage::Writing => "writing",
        }
    }
}

#[derive(Default)]
struct LayerState {
    name: String,
    size: Option<u64>,
    downloaded: u64,
    indexed: u64,
    download_done: bool,
    index_done: bool,
    bar: Option<ProgressBar>,
}

struct Bars {
    multi: MultiProgress,
    width: Width,
    layers: Vec<LayerState>,
    /// A registry run: the layer bars follow the downloads, not the index pass.
    downloads: bool,
    main: Option<(Stage, ProgressBar)>,
    tar_done: u64,
    out: u64,
    import: Option<ProgressBar>,
}

impl Display {
    /// `terminal`: standard error is a terminal. `--quiet` turns every mode into silence.
    pub fn new(mode: Mode, quiet: bool, terminal: bool) -> Display {
        let kind = match (mode, quiet, terminal) {
            (_, true, _) | (Mode::None, ..) | (Mode::Auto, _, false) => Kind::Silent,
            (Mode::Plain, ..) => Kind::Plain(Mutex::default()),
            (Mode::Auto, _, true) => Kind::Bars(Mutex::new(Bars {
                // 10 redraws a second: smooth enough, and cheap over a slow remote terminal.
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
                    Box::new(ShortOfTheEdge(console::Term::stderr())),
                    10,
                )),
                width: Width::of_terminal(),
                layers: Vec::new(),
                downloads: false,
                main: None,
                tar_done: 0,
                out: 0,
                import: None,
            })),
        };
        Display { kind }
    }

    /// Prints a line above the bars (or plainly, without bars).
    pub fn println(&self, line: &str) {
        match &self.kind {
            Kind::Bars(bars) => bars.lock().unwrap().multi.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    /// Removes every bar (before the summary, an error, or the "interrupted" line).
    pub fn clear(&self) {
        if let Kind::Bars(bars) = &self.kind {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            // Every drawn line at once, before any bar is removed: removing bars one by
            // one redraws in between, and could leave a line behind.
            let _ = bars.multi.clear();
            // Nothing is drawn after this: on Ctrl-C the threads still running must not
            // draw a bar under the "interrupted" line.
            bars.multi.set_draw_target(ProgressDrawTarget::hidden());
            bars.clear_all();
        }
    }
}

/// Standard error, one column narrower than it is. A line that fills the last column leaves
/// the cursor waiting to wrap, and the `^C` the terminal echoes on Ctrl-C then starts a new
/// row that the display does not know of: the top bar was left behind.
#[derive(Debug)]
struct ShortOfTheEdge(console::Term);

impl indicatif::TermLike for ShortOfTheEdge {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(1).max(1)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The rate, once there is one worth showing: never the `0 B/s` of the first frame.
fn known_rate(state: &ProgressState) -> Option<f64> {
    let rate = state.per_sec();
    (state.pos() > 0 && state.elapsed() >= Duration::from_millis(500) && rate.is_finite())
        .then_some(rate)
        .filter(|r| *r >= 1.0)
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

fn speed(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    if let Some(rate) = known_rate(state) {
        let _ = write!(w, " {}/s", human(rate as u64));
    }
}

fn time_left(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    if let (Some(rate), Some(len)) = (known_rate(state), state.len()) {
        if state.pos() < len {
            // Rounded up: "eta 0s" would claim the work is done.
            let secs = ((len - state.pos()) as f64 / rate).ceil();
            let _ = write!(w, " eta {}", short_duration(Duration::from_secs_f64(secs)));
        }
    }
}

fn size(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = match state.len() {
        Some(len) => write!(w, " {}/{}", human(state.pos()), human(len)),
        None => write!(w, " {}", human(state.pos())),
    };
}

fn percent(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    if let Some(len) = state.len().filter(|l| *l > 0) {
        let _ = write!(w, " {:>3}%", state.pos().min(len) * 100 / len);
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
        .with_key("speed", speed)
        .with_key("left", time_left)
        .with_key("size", size)
        .with_key("pct", percent)
}

/// The style of the line for a whole stage.
fn stage_style(width: Width) -> ProgressStyle {
    style(match width {
        Width::Full => "{prefix:>11} [{wide_bar}]{size}{speed}{left}{msg}",
        Width::Medium => "{prefix:>11} [{wide_bar}]{size}{speed}{left}",
        Width::Narrow => "{prefix:>11} [{wide_bar}]{pct}{left}",
    })
}

/// The style of a layer's line.
fn layer_style(width: Width) -> ProgressStyle {
    style(match width {
        Width::Full => "{prefix:>11} [{wide_bar}]{size}{speed}",
        Width::Medium => "{prefix:>11} [{wide_bar}]{size}",
        Width::Narrow => "{prefix:>11} [{wide_bar}]{pct}",
    })
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {wide_msg}")
        .expect("a valid template")
        .tick_chars("|/-\\ ")
}

impl Bars {
    /// Restyles every bar when the terminal's width class changed since the last update.
    fn fit(&mut self) {
        let width = Width::of_terminal();
        if width == self.width {
            return;
        }
        self.width = width;
        if let Some((_, bar)) = &self.main {
            bar.set_style(stage_style(width));
        }
        for layer in &self.layers {
            if let Some(bar) = &layer.bar {
                bar.set_style(layer_style(width));
            }
        }
    }

    fn clear_layers(&mut self) {
        for layer in &mut self.layers {
            if let Some(bar) = layer.bar.take() {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
    }

    fn clear_all(&mut self) {
        self.clear_layers();
        if let Some((_, bar)) = self.main.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if let Some(bar) = self.import.take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    /// The whole-stage bar for `stage`, made (in place of the previous one) if needed.
    fn stage(&mut self, stage: Stage, len: Option<u64>) -> ProgressBar {
        if let Some((current, bar)) = self.main.clone() {
            if current == stage {
                return bar;
            }
            // Reading and downloading share a bar: only the label changes.
            if stage != Stage::Writing && current != Stage::Writing {
                bar.set_prefix(stage.label());
                self.main = Some((stage, bar.clone()));
                return bar;
            }
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
        bar.set_style(stage_style(self.width));
        bar.set_prefix(stage.label());
        // Below the layer lines, so the total stays in one place.
        let bar = self.multi.add(bar);
        // Drawn at once: the first progress may be a whole large file away.
        bar.tick();
        self.main = Some((stage, bar.clone()));
        bar
    }

    fn read_total(&self) -> Option<u64> {
        self.layers.iter().map(|l| l.size).sum()
    }

    fn update_reading(&mut self) {
        let all_downloaded = self.layers.iter().all(|l| l.download_done);
        let (stage, done) = if self.downloads && !all_downloaded {
            (
                Stage::Downloading,
                self.layers.iter().map(|l| l.downloaded).sum(),
            )
        } else {
            (Stage::Reading, self.layers.iter().map(|l| l.indexed).sum())
        };
        let total = self.read_total();
        let bar = self.stage(stage, total);
        bar.set_position(done);
    }

    fn layer_progress(&mut self, index: usize, done: u64, total: Option<u64>) {
        if index >= self.layers.len() {
            self.layers.resize_with(index + 1, LayerState::default);
        }
        let width = self.width;
        let multi = self.multi.clone();
        let main = self.main.as_ref().map(|(_, bar)| bar.clone());
        let layer = &mut self.layers[index];
        let bar = layer.bar.get_or_insert_with(|| {
            let bar =
                ProgressBar::with_draw_target(total.or(layer.size), ProgressDrawTarget::hidden());
            bar.set_style(layer_style(width));
            bar.set_prefix(layer.name.clone());
            match &main {
                Some(main) => multi.insert_before(main, bar),
                None => multi.add(bar),
            }
        });
        bar.set_position(done);
    }

    fn layer_finished(&mut self, index: usize) {
        if let Some(bar) = self.layers.get_mut(index).and_then(|l| l.bar.take()) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn out_message(&self) -> String {
        if self.out == 0 || self.tar_done == 0 {
            return String::new();
        }
        format!(
            " -> {} ({}%)",
            human(self.out),
            (self.out as f64 * 100.0 / self.tar_done as f64).round() as u64
        )
    }

    fn event(&mut self, event: &Event) {
        self.fit();
        match event {
            Event::Resolved(resolved) => {
                self.layers = resolved
                    .layers
                    .iter()
                    .map(|l| LayerState {
                        name: l
                            .digest
                            .as_deref()
                            .map(|d| d.split_once(':').map_or(d, |(_, hex)| hex))
                            .unwrap_or(&l.diff_id)
                            .chars()
                            .take(11)
                            .collect(),
                        size: l.size,
                        ..LayerState::default()
                    })
                    .collect();
                self.update_reading();
            }
            Event::Progress {
                phase: Phase::Download,
                layer: Some(layer),
                done,
                total,
            } => {
                self.downloads = true;
                if let Some(l) = self.layers.get_mut(*layer) {
                    l.downloaded = *done;
                }
                if !self.layers.get(*layer).is_some_and(|l| l.download_done) {
                    self.layer_progress(*layer, *done, *total);
                }
                self.update_reading();
            }
            Event::Progress {
                phase: Phase::Index,
                layer: Some(layer),
                done,
                total,
            } => {
                if let Some(l) = self.layers.get_mut(*layer) {
                    l.indexed = *done;
                }
                if !self.downloads && !self.layers.get(*layer).is_some_and(|l| l.index_done) {
                    self.layer_progress(*layer, *done, *total);
                }
                self.update_reading();
            }
            Event::LayerDone { phase, layer, .. } => {
                if let Some(l) = self.layers.get_mut(*layer) {
                    match phase {
                        Phase::Download => l.download_done = true,
                        Phase::Index => l.index_done = true,
                        _ => {}
                    }
                }
                if *phase == Phase::Download || !self.downloads {
                    self.layer_finished(*layer);
                }
                if matches!(self.main, Some((Stage::Reading | Stage::Downloading, _))) {
                    self.update_reading();
                }
            }
            Event::EmitStarted { tar_bytes, .. } => {
                self.clear_layers();
                self.stage(Stage::Writing, Some(*tar_bytes));
            }
            Event::Progress {
                phase: Phase::Emit,
                done,
                total,
                ..
            } => {
                self.tar_done = *done;
                let bar = self.stage(Stage::Writing, *total);
                if let Some(total) = total {
                    bar.set_length(*total);
                }
                bar.set_position(*done);
                bar.set_message(self.out_message());
            }
            Event::Progress {
                phase: Phase::Output,
                done,
                ..
            } => {
                self.out = *done;
                if let Some((Stage::Writing, bar)) = &self.main {
                    bar.set_message(self.out_message());
                }
            }
            Event::ImportStarted { name } => {
                // Importing a finished file: the writing is over.
                if let Some((Stage::Writing, bar)) = self.main.clone() {
                    if bar.length().is_some_and(|len| bar.position() >= len) {
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                        self.main = None;
                    }
                }
                let spinner = self.multi.add(ProgressBar::with_draw_target(
                    None,
                    ProgressDrawTarget::hidden(),
                ));
                spinner.set_style(spinner_style());
                spinner.set_message(format!("importing into WSL as {}", printable(name)));
                spinner.enable_steady_tick(Duration::from_millis(200));
                self.import = Some(spinner);
            }
            Event::ImportFinished { .. } => {
                if let Some(spinner) = self.import.take() {
                    spinner.finish_and_clear();
                    self.multi.remove(&spinner);
                }
            }
            _ => {}
        }
    }
}

impl PlainState {
    fn event(&mut self, event: &Event) -> Option<String> {
        match event {
            Event::Resolved(r) => {
                let n = r.layers.len();
                Some(format!(
                    "resolved {} ({}): {n} layer{}, {}",
                    printable(&r.image),
                    r.platform,
                    if n == 1 { "" } else { "s" },
                    human(r.download_bytes())
                ))
            }
            Event::Progress {
                phase: Phase::Download,
                ..
            } if !self.downloading => {
                self.downloading = true;
                Some("downloading layers".into())
            }
            Event::Progress {
                phase: Phase::Index,
                ..
            } if !self.reading && !self.downloading => {
                self.reading = true;
                Some("reading layers".into())
            }
            Event::EmitStarted { tar_bytes, paths } if !self.writing => {
                self.writing = true;
                Some(format!(
                    "writing {paths} paths, {} of tar",
                    human(*tar_bytes)
                ))
            }
            Event::ImportStarted { name } => {
                Some(format!("importing into WSL as {}", printable(name)))
            }
            Event::ImportFinished { name, .. } => Some(format!("imported {}", printable(name))),
            _ => None,
        }
    }
}

fn retry_line(what: &str, attempt: u32, reason: &str, wait: Duration) -> String {
    format!(
        "oci2wsl: retrying {} in {:.1}s (retry {attempt}): {}",
        printable(what),
        wait.as_secs_f64(),
        printable(reason)
    )
}

impl Observer for Display {
    fn event(&self, event: &Event) {
        match event {
            Event::Warning { message } => {
                return self.println(&format!("oci2wsl: warning: {}", printable(message)));
            }
            Event::Retry {
                what,
                attempt,
                reason,
                wait,
            } if !matches!(self.kind, Kind::Silent) => {
                return self.println(&retry_line(what, *attempt, reason, *wait));
            }
            _ => {}
        }
        match &self.kind {
            Kind::Silent => {}
            Kind::Plain(state) => {
                if let Some(line) = state.lock().unwrap().event(event) {
                    eprintln!("{line}");
                }
            }
            Kind::Bars(bars) => bars.lock().unwrap().event(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_secs(5)), "5s");
        assert_eq!(short_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(short_duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn plain_mode_prints_each_phase_once() {
        let mut plain = PlainState::default();
        let progress = |phase| Event::Progress {
            phase,
            layer: Some(0),
            done: 1,
            total: None,
        };
        assert_eq!(
            plain.event(&progress(Phase::Index)).as_deref(),
            Some("reading layers")
        );
        assert_eq!(plain.event(&progress(Phase::Index)), None);
        let started = Event::EmitStarted {
            tar_bytes: 2048,
            paths: 3,
        };
        assert_eq!(
            plain.event(&started).as_deref(),
            Some("writing 3 paths, 2.0 KiB of tar")
        );
        assert_eq!(plain.event(&started), None);
    }
}
