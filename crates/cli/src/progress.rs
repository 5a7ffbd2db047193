//! Progress: a bar on a terminal, a line every few seconds otherwise, or nothing.

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq)]
pub enum Mode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    Bar,
    Plain,
    None,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    verb: &'static str,
    bar: Option<ProgressBar>,
    plain: bool,
    started: Instant,
    last_line: Instant,
    files: u64,
    bytes: u64,
    done: u64,
    failed: u64,
    bytes_done: u64,
}

impl Progress {
    pub fn new(mode: Mode, verb: &'static str) -> Self {
        let tty = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            Mode::Bar => (true, false),
            Mode::Auto if tty => (true, false),
            Mode::Auto | Mode::Plain => (false, true),
            Mode::None => (false, false),
        };
        let bar = bar.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} files {msg} ETA {eta}",
                )
                .expect("a valid template"),
            );
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        let now = Instant::now();
        Self {
            verb,
            bar,
            plain,
            started: now,
            last_line: now,
            files: 0,
            bytes: 0,
            done: 0,
            failed: 0,
            bytes_done: 0,
        }
    }

    /// Work known to be left, and work an earlier run already did.
    pub fn plan(&mut self, files: u64, bytes: u64) {
        self.files = files;
        self.bytes = bytes;
        if let Some(b) = &self.bar {
            b.set_length(files);
        }
        self.show();
    }

    pub fn ended(&mut self, bytes: u64, failed: bool) {
        self.done += 1;
        self.failed += u64::from(failed);
        if !failed {
            self.bytes_done += bytes;
        }
        self.show();
    }

    /// Lets the plain mode print its line while nothing ends.
    pub fn tick(&mut self) {
        self.show();
    }

    fn message(&self) -> String {
        format!(
            "({} failed) {} of {}",
            self.failed,
            HumanBytes(self.bytes_done),
            HumanBytes(self.bytes)
        )
    }

    fn show(&mut self) {
        if let Some(b) = &self.bar {
            b.set_position(self.done);
            b.set_message(self.message());
        } else if self.plain && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            let rate = self.done as f64 / secs;
            let eta = if rate > 0.0 && self.files > self.done {
                format!(
                    ", ETA {}",
                    HumanDuration(Duration::from_secs_f64(
                        (self.files - self.done) as f64 / rate
                    ))
                )
            } else {
                String::new()
            };
            eprintln!(
                "egress {}: {}/{} files {}, {rate:.1} files/s{eta}",
                self.verb,
                self.done,
                self.files,
                self.message()
            );
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
