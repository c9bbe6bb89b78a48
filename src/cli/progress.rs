//! The human progress display: one display for the whole run (reading or downloading the
//! layers, writing the tar, importing into WSL), and warnings and retries as lines that
//! never tear a bar.
//!
//! The bars are redrawn for the terminal's width at every update, so a resize (down to
//! 50 columns and below) reflows them; [`BarTerminal`] clears what the terminal made of the
//! old lines, so no wrapped fragment stays behind.

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
                    Box::new(BarTerminal::stderr()),
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

/// Standard error as the bars' terminal. indicatif draws a frame as: cursor moves and
/// line clears for the rows it drew last time, then each line as two writes (its text, then
/// spaces to the width), then a flush. This terminal keeps its own account of the rows
/// instead, because indicatif counts them at the width the terminal has *now*, and a
/// terminal that reflows (tmux, VTE, Windows Terminal, kitty) has re-wrapped the old lines:
/// after a shrink from 120 to 50 columns a line of 119 cells fills 3 rows, and the rows
/// above the one indicatif cleared stayed behind as fragments.
///
/// - Lines are one column short of the edge and separated by a hard `\r\n`, never by
///   the terminal's own wrap: each is a line of its own in the terminal's model, so a
///   reflow splits each one alone (`ceil(cells / columns)` rows) and a widening does not
///   join them. (A full row would leave the cursor waiting to wrap; a console that wraps
///   eagerly would then open a blank row at the `\r\n`.)
/// - After a frame the cursor waits at the start of the last line. A reflowing terminal
///   keeps it on the first cell of that line, so the top of the block is the rows of the
///   other lines, counted at the width of the terminal now, above it; and the `^C` echoed
///   on Ctrl-C overwrites two cells of the bar instead of opening a row the count misses.
/// - A frame starts by going to that top and clearing it and every row below, so every row
///   the old lines reflowed into goes, whatever the old width.
///
/// A saved cursor position (DECSC) does not do the job: tmux keeps it in screen coordinates
/// and neither scrolling nor a reflow moves it. What this cannot reach: rows that a reflow
/// pushed into the scrollback (tmux keeps the screen's bottom rows, blank ones included,
/// so when the bars sit near the top of a mostly empty screen the rows its shrink adds push
/// the top ones out), and terminals that do not reflow (xterm, the Linux console), where the
/// count over-reaches and the rows above the bars are cleared too.
///
/// Every line drawn through here is a bar: messages go through `MultiProgress::suspend`,
/// which clears the bars, prints with a newline of its own, and draws them again.
#[derive(Debug)]
struct BarTerminal {
    term: console::Term,
    frame: Mutex<Frame>,
}

#[derive(Debug, Default)]
struct Frame {
    /// Between a frame's first cursor call and its flush.
    drawing: bool,
    /// Writes since the frame began: even ones are a line's text, odd ones its padding.
    writes: usize,
    /// The cells of each line drawn so far in this frame, then (after the flush) of the
    /// lines on screen.
    lines: Vec<usize>,
}

/// The rows a line of `cells` occupies on a terminal of `columns` that reflows.
fn rows_of(cells: usize, columns: usize) -> usize {
    cells.div_ceil(columns.max(1)).max(1)
}

/// The rows above the last line of `lines`, at `columns`.
fn rows_above_last(lines: &[usize], columns: usize) -> usize {
    match lines.split_last() {
        Some((_, above)) => above.iter().map(|&cells| rows_of(cells, columns)).sum(),
        None => 0,
    }
}

impl BarTerminal {
    fn stderr() -> BarTerminal {
        BarTerminal {
            term: console::Term::stderr(),
            frame: Mutex::new(Frame::default()),
        }
    }

    fn columns(&self) -> usize {
        self.term.size().1 as usize
    }

    /// At the first cursor call of a frame: from the start of the last line drawn, to the
    /// top of the block as the terminal shows it now, and clears from there down.
    /// indicatif's own moves (counted at the new width) are ignored.
    fn begin_frame(&self) -> std::io::Result<()> {
        let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        if frame.drawing {
            return Ok(());
        }
        let drawn = std::mem::take(&mut frame.lines);
        *frame = Frame {
            drawing: true,
            ..Frame::default()
        };
        drop(frame);
        if drawn.is_empty() {
            return Ok(());
        }
        let columns = self.columns();
        let up = rows_above_last(&drawn, columns);
        let below_top = up + drawn.last().map_or(1, |&cells| rows_of(cells, columns)) - 1;
        self.term.move_cursor_up(up)?;
        self.term.clear_line()?;
        // The rows under the top are cleared from the row below it: tmux takes a clear to
        // the end of the screen from its top-left cell for a whole-screen clear, and with
        // its default `scroll-on-clear` copies the bars into the scrollback first. The rows
        // below exist: the last line's rows are on the screen under the cursor.
        if below_top > 0 {
            self.term.move_cursor_down(1)?;
            self.term.clear_to_end_of_screen()?;
            self.term.move_cursor_up(1)?;
        }
        Ok(())
    }
}

impl indicatif::TermLike for BarTerminal {
    fn width(&self) -> u16 {
        self.term.size().1.saturating_sub(1).max(1)
    }
    fn height(&self) -> u16 {
        self.term.size().0
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        self.begin_frame()
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        self.begin_frame()
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        self.begin_frame()
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        self.begin_frame()
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.begin_frame()
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        // Only the bottom alignment, which this display does not use, writes whole lines.
        self.write_str(s)?;
        self.term.write_str("\r\n")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.begin_frame()?;
        let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        let cells = console::measure_text_width(s);
        let text = frame.writes % 2 == 0;
        frame.writes += 1;
        let new_row = text && !frame.lines.is_empty();
        if text {
            frame.lines.push(cells);
        } else if let Some(last) = frame.lines.last_mut() {
            *last += cells;
        }
        drop(frame);
        if new_row {
            self.term.write_str("\r\n")?;
        }
        self.term.write_str(s)
    }
    fn flush(&self) -> std::io::Result<()> {
        let mut frame = self.frame.lock().unwrap_or_else(|e| e.into_inner());
        if frame.drawing {
            frame.drawing = false;
            if let Some(&last) = frame.lines.last() {
                self.term.write_str("\r")?;
                // A line wider than the terminal (a bar not yet redrawn since a shrink)
                // wrapped as it was written: back to its first row.
                let wrapped = rows_of(last, self.columns()) - 1;
                if wrapped > 0 {
                    self.term.move_cursor_up(wrapped)?;
                }
            }
        }
        drop(frame);
        self.term.flush()
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

/// The one form of a retry's line, for a run and for `--inspect` alike.
pub fn retry_line(what: &str, attempt: u32, reason: &str, wait: Duration) -> String {
    format!(
        "oci2wsl: {}: {}; retry {attempt} in {:.1} s",
        printable(what),
        printable(reason),
        wait.as_secs_f64()
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
    fn a_shrink_counts_the_rows_the_old_lines_reflowed_into() {
        // Two lines drawn at 120 columns (119 cells each), seen at 50: the first fills 3 rows.
        assert_eq!(rows_above_last(&[119, 119], 50), 3);
        // Widening does not join lines that ended in a newline of their own.
        assert_eq!(rows_above_last(&[49, 49, 49], 120), 2);
        assert_eq!(rows_above_last(&[119], 50), 0);
        assert_eq!(rows_above_last(&[], 50), 0);
        assert_eq!(rows_of(0, 50), 1);
        assert_eq!(rows_of(50, 50), 1);
        assert_eq!(rows_of(51, 50), 2);
    }

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
