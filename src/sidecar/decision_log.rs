//! The decision log: one JSON line per Authorize or STS decision, written off the request path.
//!
//! A decision must never wait for the log. Callers ask [`DecisionLog::wants`] first, so records
//! that `deny_only`, sampling or `Off` would discard are never built; [`DecisionLog::record`]
//! then enqueues with `try_send` and, when the bounded queue is full, drops the record and
//! counts it. One writer task drains the queue in batches and hands each batch to the blocking
//! pool, where it is serialized and written with one `write` call, so a burst costs one syscall
//! per batch rather than one per record.
//!
//! An Authorize decision is not even built on the request path (issue 19, P7: building it cost
//! more than deciding a cached request): the request queues what its record is made of (a
//! handle on the decision, its action and resource, a number for a made-up id), and the
//! writer writes its JSON line from those, field by field, without building a record
//! (`JsonLine`; tests hold it to serde's text of the record byte for byte).
//!
//! Bounded, line and file (issue #13, item 6): every text field of a record is capped at
//! [`MAX_FIELD_BYTES`], with a marker and a count: what the request gives before it is queued
//! (so the queue's memory is bounded too), what the writer derives as it writes the line. A
//! file sink rotates by size, keeping a number of older files, and only ever between two
//! records, so no record is lost to or split across a rotation.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::authorize::LoggedDecision;
use crate::policy::Timestamp;
use crate::sync::report;

/// The queue bound when the configuration does not name one.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The most records one batch takes from the queue: it bounds the write buffer (a few hundred
/// KiB) while still turning a burst into a handful of syscalls.
const BATCH_LIMIT: usize = 1024;

/// How long a small batch waits for more records before it is written. Handing each record
/// to the blocking pool and the kernel on its own costs more than building it (a thread
/// wake-up and a write per decision); a few milliseconds of delay turns a steady load into
/// one write per few hundred records. Each batch still costs two thread switches and a
/// timer: 20 ms makes batches up to four times fewer than 5 ms did, for records that reach
/// the file up to 20 ms later. A stop waits at most this long more.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// The longest a text field of a record may be, in bytes; longer ones keep their first bytes
/// (on a character boundary) and end with [`TRUNCATED_MARK`]. Twice the longest ARN AWS
/// accepts, so a real value is never cut.
pub const MAX_FIELD_BYTES: usize = 4096;

/// What ends a truncated field.
pub const TRUNCATED_MARK: &str = "...[truncated]";

/// The default size at which a decision log file is rotated: 100 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;

/// The default number of rotated files kept (`decisions.log.1` .. `.5`), uncompressed.
pub const DEFAULT_KEEP_FILES: u32 = 5;

/// When a file sink is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a file would grow past this many bytes (0: never rotate). A single
    /// record larger than this still goes whole into a file of its own.
    pub max_file_bytes: u64,
    /// Rotated files kept: `PATH.1` is the newest; the oldest beyond this is deleted. 0 keeps
    /// none (the file is simply started over).
    pub keep: u32,
}

impl Default for Rotation {
    /// 100 MiB per file, 5 rotated files kept: at most 600 MiB on disk.
    fn default() -> Self {
        Self {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            keep: DEFAULT_KEEP_FILES,
        }
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSink {
    /// Nowhere: nothing is built, queued or written.
    Off,
    /// Standard output, one line per record.
    Stdout,
    /// A file, opened for appending and created with mode 0600 on unix when missing (an
    /// existing file keeps its mode).
    File(PathBuf),
}

/// How the log behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLogConfig {
    /// Where records go.
    pub sink: LogSink,
    /// Keep only denies and errors; all of them are kept, whatever `sample_rate` says.
    pub deny_only: bool,
    /// The share of records kept, within `0.0..=1.0`; without `deny_only` it applies to
    /// denies and errors too.
    pub sample_rate: f64,
    /// The queue bound: records beyond it are dropped and counted.
    pub capacity: usize,
    /// When a file sink rotates (ignored for standard output and for files that are not
    /// regular files, such as `/dev/null`).
    pub rotation: Rotation,
}

/// One decision, built only when [`DecisionLog::wants`] says the log keeps it.
///
/// The caller fills every field; none may hold a secret key, session token or signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DecisionRecord {
    /// When the decision was made: RFC 3339 in UTC with milliseconds (see [`rfc3339_millis`]).
    pub time: String,
    /// The request's id, as answered to the caller.
    pub request_id: String,
    /// `Authorize`, `BatchAuthorize`, `AssumeRole`, `AssumeRoleWithWebIdentity`,
    /// `GetSessionToken` or `GetCallerIdentity`.
    pub operation: &'static str,
    /// The tenant that decided.
    pub tenant: String,
    /// The caller's ARN.
    pub principal: String,
    /// The action asked for.
    pub action: String,
    /// The resource asked for.
    pub resource: String,
    /// `Allow`, `ExplicitDeny`, `ImplicitDeny` or `Error`.
    pub decision: &'static str,
    /// The AWS error code when `decision` is `Error`.
    pub error_code: Option<&'static str>,
    /// The kind of policy whose statement decided, if one did.
    pub policy_type: Option<&'static str>,
    /// The deciding statement, as `policy-id#index(sid)`.
    pub statement: Option<String>,
    /// The snapshot that decided, as `epoch.seq`.
    pub snapshot_version: String,
    /// How long the decision took.
    pub latency_us: u64,
    /// Whether the answer came from a cache.
    pub cached: bool,
}

/// What the queue carries: a record built by its caller, or an Authorize decision the writer
/// makes into one.
#[derive(Debug)]
enum Queued {
    Built(DecisionRecord),
    Authorize(LoggedDecision),
}

/// The running log; cheap to share in an `Arc`.
#[derive(Debug)]
pub struct DecisionLog {
    /// `None` when the sink is `Off`.
    sender: Option<mpsc::Sender<Queued>>,
    deny_only: bool,
    sampling: Sampling,
    counters: Arc<Counters>,
}

/// The writer task; [`DecisionLogTask::shutdown`] stops it without losing what was queued.
///
/// Dropping it instead detaches the writer, which then runs until every [`DecisionLog`]
/// handle is gone.
#[derive(Debug)]
#[must_use = "dropping the task detaches the writer; call shutdown() to flush on exit"]
pub struct DecisionLogTask {
    /// `None` when the sink is `Off`.
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    writer: JoinHandle<()>,
}

/// Why the decision log could not start.
#[derive(Debug, thiserror::Error)]
pub enum DecisionLogError {
    /// The file sink could not be opened.
    #[error("cannot open the decision log {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The sink was empty.
    #[error("the decision log sink must be \"off\", \"stdout\", \"-\" or a file path")]
    EmptySink,
    /// The sample rate was outside `0..=1` (or not a number).
    #[error("the decision log sample rate must be within 0 and 1, not {0}")]
    SampleRate(f64),
    /// The capacity was zero.
    #[error("the decision log capacity must be at least 1")]
    Capacity,
    /// `spawn` was called outside a tokio runtime.
    #[error("the decision log must start inside a tokio runtime")]
    NoRuntime,
}

/// Which sample keys are kept, decided once so that `wants` is a compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sampling {
    Never,
    Always,
    /// Keys whose mixed value is below this are kept.
    Below(u64),
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    truncated: AtomicU64,
    rotations: AtomicU64,
}

/// The sink the writer owns, moved into the blocking pool for each batch.
enum Output {
    Stdout(io::Stdout),
    File(LogFile),
}

/// A file sink and what rotating it needs.
struct LogFile {
    file: std::fs::File,
    path: PathBuf,
    /// Bytes in the current file.
    size: u64,
    /// `None`: never rotated (not a regular file, or rotation off).
    rotation: Option<Rotation>,
    counters: Arc<Counters>,
}

/// The writer's state between batches.
struct Writer {
    output: Output,
    /// Reused across batches so a steady stream does not allocate.
    buf: Vec<u8>,
    /// The previous write stopped inside a line: the next batch starts on a new line so one
    /// torn record does not also corrupt the first record after it.
    torn: bool,
    /// The records' times.
    clock: TimeText,
    /// A field's text while a decision's line is made.
    scratch: String,
}

/// What a batch came to.
struct BatchOutcome {
    written: u64,
    failed: u64,
    error: Option<io::Error>,
    /// Fields of records made by the writer that were cut to [`MAX_FIELD_BYTES`].
    truncated: u64,
}

/// A stable key for sampling `request_id`, the same in every process: its 64-bit FNV-1a hash.
pub fn sample_key(request_id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    request_id.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// `at` as RFC 3339 in UTC with exactly three fraction digits (rounded down), the form of
/// [`DecisionRecord::time`].
pub fn rfc3339_millis(at: Timestamp) -> String {
    TimeText::default().millis(at)
}

/// [`rfc3339_millis`] for a stream of times, formatting each second's date once: the records
/// of a batch share their second, and formatting the date cost a record more than
/// serializing it (~9,000 instructions of the writer's ~23,000).
#[derive(Debug, Default)]
pub struct TimeText {
    /// The second `text` shows, as epoch seconds.
    second: Option<i64>,
    /// `second` as RFC 3339 without its zone: `2026-12-04T09:40:17`.
    text: String,
}

impl TimeText {
    /// `at` as [`rfc3339_millis`] makes it.
    pub fn millis(&mut self, at: Timestamp) -> String {
        let mut text = Vec::with_capacity(24);
        self.push_millis(at, &mut text);
        // ASCII throughout: nothing is replaced.
        String::from_utf8_lossy(&text).into_owned()
    }

    /// Appends `at` as [`rfc3339_millis`] makes it to `text`, as ASCII.
    pub fn push_millis(&mut self, at: Timestamp, text: &mut Vec<u8>) {
        let millis = at.epoch_millis();
        let second = millis.div_euclid(1000);
        if self.second != Some(second) {
            let whole = Timestamp::from_epoch_seconds(second).to_string();
            // Whole seconds display without a fraction, so the text ends in the zone's `Z`.
            self.text.clear();
            self.text
                .push_str(whole.strip_suffix('Z').unwrap_or(&whole));
            self.second = Some(second);
        }
        let fraction = millis.rem_euclid(1000);
        // INVARIANT: `d % 10` is a digit, 0 to 9, for the `fraction` in 0..1000.
        let digit = |d: i64| b'0' + u8::try_from(d % 10).unwrap_or(0);
        text.extend_from_slice(self.text.as_bytes());
        text.extend_from_slice(&[
            b'.',
            digit(fraction / 100),
            digit(fraction / 10),
            digit(fraction),
            b'Z',
        ]);
    }
}

/// Spreads FNV-1a's output over all 64 bits (the splitmix64 finalizer): request ids that differ
/// only in their last characters would otherwise cluster in the high bits the threshold reads.
fn mix(key: u64) -> u64 {
    let mut z = key;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// === impl DecisionLogConfig ===

impl Default for DecisionLogConfig {
    fn default() -> Self {
        Self {
            sink: LogSink::Off,
            deny_only: false,
            sample_rate: 1.0,
            capacity: DEFAULT_CAPACITY,
            rotation: Rotation::default(),
        }
    }
}

impl DecisionLogConfig {
    /// Reads a sink as flags and the environment spell it: `off`, `stdout` or `-`, or a path.
    pub fn parse_sink(text: &str) -> Result<LogSink, DecisionLogError> {
        match text {
            "" => Err(DecisionLogError::EmptySink),
            "off" => Ok(LogSink::Off),
            "stdout" | "-" => Ok(LogSink::Stdout),
            path => Ok(LogSink::File(PathBuf::from(path))),
        }
    }

    /// Checks the sample rate and capacity.
    pub fn validate(&self) -> Result<(), DecisionLogError> {
        // NaN fails the range check too, which is what we want.
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(DecisionLogError::SampleRate(self.sample_rate));
        }
        if self.capacity == 0 {
            return Err(DecisionLogError::Capacity);
        }
        Ok(())
    }

    fn sampling(&self) -> Sampling {
        if self.sample_rate <= 0.0 {
            Sampling::Never
        } else if self.sample_rate >= 1.0 {
            Sampling::Always
        } else {
            // 2^64 as f64 is exact; the cast saturates, and rates in (0, 1) stay below it.
            Sampling::Below((self.sample_rate * 18_446_744_073_709_551_616.0) as u64)
        }
    }
}

// === impl DecisionLog ===

impl DecisionLog {
    /// Validates `config`, opens the sink and starts the writer task on the current tokio
    /// runtime. `Off` gives a log that keeps nothing and spawns nothing.
    pub fn spawn(
        config: DecisionLogConfig,
    ) -> Result<(Arc<Self>, DecisionLogTask), DecisionLogError> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let (deny_only, sampling) = (config.deny_only, config.sampling());
        let (output, target) = match config.sink {
            LogSink::Off => {
                let log = Self {
                    sender: None,
                    deny_only,
                    sampling: Sampling::Never,
                    counters,
                };
                return Ok((Arc::new(log), DecisionLogTask { running: None }));
            }
            LogSink::Stdout => (Output::Stdout(io::stdout()), "standard output".to_owned()),
            LogSink::File(path) => match LogFile::open(&path, config.rotation, &counters) {
                Ok(file) => (Output::File(file), path.display().to_string()),
                Err(source) => return Err(DecisionLogError::Open { path, source }),
            },
        };
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| DecisionLogError::NoRuntime)?;
        let (sender, receiver) = mpsc::channel(config.capacity);
        let (stop, stopped) = oneshot::channel();
        let writer = Writer {
            output,
            buf: Vec::new(),
            torn: false,
            clock: TimeText::default(),
            scratch: String::new(),
        };
        let writer = runtime.spawn(run_writer(
            receiver,
            stopped,
            writer,
            target,
            Arc::clone(&counters),
        ));
        let log = Self {
            sender: Some(sender),
            deny_only,
            sampling,
            counters,
        };
        Ok((
            Arc::new(log),
            DecisionLogTask {
                running: Some(Running { stop, writer }),
            },
        ))
    }

    /// A log that keeps nothing (the `Off` sink), without a runtime.
    pub fn off() -> Arc<Self> {
        Arc::new(Self {
            sender: None,
            deny_only: false,
            sampling: Sampling::Never,
            counters: Arc::new(Counters::default()),
        })
    }

    /// False for the `Off` sink: callers can then skip all work done for the log.
    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Whether a decision would be kept, before the caller builds its record: `deny_or_error`
    /// for `ExplicitDeny`, `ImplicitDeny` and `Error`; `sample_key` a stable hash of the
    /// request (see [`sample_key`]), so the same request always gets the same answer.
    pub fn wants(&self, deny_or_error: bool, sample_key: u64) -> bool {
        self.wants_with(deny_or_error, || sample_key)
    }

    /// [`DecisionLog::wants`], with the sample key made only when sampling reads it.
    pub fn wants_with(&self, deny_or_error: bool, sample_key: impl FnOnce() -> u64) -> bool {
        if self.sender.is_none() {
            return false;
        }
        if self.deny_only {
            return deny_or_error;
        }
        match self.sampling {
            Sampling::Never => false,
            Sampling::Always => true,
            Sampling::Below(threshold) => mix(sample_key()) < threshold,
        }
    }

    /// Enqueues `record` without waiting. When the queue is full, or the log has shut down,
    /// the record is dropped and counted. It does not ask [`DecisionLog::wants`] again: that is
    /// the caller's check, made before building the record.
    pub fn record(&self, mut record: DecisionRecord) {
        let Some(sender) = &self.sender else { return };
        // Before the queue: a queue of huge records would be a memory bound of its own.
        let cut = record.cap_fields();
        if cut > 0 {
            self.counters.truncated.fetch_add(cut, Ordering::Relaxed);
        }
        if sender.try_send(Queued::Built(record)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Enqueues an Authorize decision, for the writer to make into its record; as
    /// [`DecisionLog::record`] does, without waiting, dropping and counting it when the queue
    /// is full. Its fields are the caller's to keep within [`MAX_FIELD_BYTES`] (what the
    /// writer derives from the decision is capped there).
    pub(super) fn record_deferred(&self, decision: LoggedDecision) {
        let Some(sender) = &self.sender else { return };
        if sender.try_send(Queued::Authorize(decision)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the queue was full (or the log had shut down).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Records written to the sink.
    pub fn written(&self) -> u64 {
        self.counters.written.load(Ordering::Relaxed)
    }

    /// Records lost because the sink refused a write (every record of a failed batch).
    pub fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Fields cut to [`MAX_FIELD_BYTES`] so far.
    pub fn truncated(&self) -> u64 {
        self.counters.truncated.load(Ordering::Relaxed)
    }

    /// Times the file was rotated.
    pub fn rotations(&self) -> u64 {
        self.counters.rotations.load(Ordering::Relaxed)
    }
}

// === impl DecisionRecord ===

impl DecisionRecord {
    /// Caps every text field at [`MAX_FIELD_BYTES`]; returns how many were cut.
    pub(super) fn cap_fields(&mut self) -> u64 {
        let mut cut = 0;
        for field in [
            &mut self.time,
            &mut self.request_id,
            &mut self.tenant,
            &mut self.principal,
            &mut self.action,
            &mut self.resource,
            &mut self.snapshot_version,
        ]
        .into_iter()
        .chain(self.statement.as_mut())
        {
            if cap(field) {
                cut += 1;
            }
        }
        cut
    }
}

/// Cuts `text` to at most [`MAX_FIELD_BYTES`] bytes, marker included, on a character
/// boundary; true when it was cut.
fn cap(text: &mut String) -> bool {
    if text.len() <= MAX_FIELD_BYTES {
        return false;
    }
    let mut end = MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(TRUNCATED_MARK);
    true
}

/// True when `bytes` hold a byte that JSON escapes: a quote, a backslash or a control
/// character. Read eight bytes a word, the last word overlapping the one before it, so that
/// a short text has no byte-at-a-time tail (`JsonLine::string` cost 788 instructions a line
/// with a vectorized byte-at-a-time scan, 624 with this one, its copies included).
fn needs_escapes(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    let mut seen = words
        .iter()
        .fold(0, |seen, word| seen | escapes_in(u64::from_le_bytes(*word)));
    if !rest.is_empty() {
        let last = match bytes.last_chunk::<8>() {
            Some(last) => *last,
            None => {
                // Shorter than a word: padded with a letter, which needs no escape.
                let mut last = [b'a'; 8];
                for (to, from) in last.iter_mut().zip(rest) {
                    *to = *from;
                }
                last
            }
        };
        seen |= escapes_in(u64::from_le_bytes(last));
    }
    seen != 0
}

/// Not zero when a byte of `word` is below 0x20, a quote or a backslash. Each test is the
/// classic "has a zero byte" (`(x - 0x01..) & !x & 0x80..`), which borrows can make wrong
/// about which byte, never about whether one is.
#[inline(always)]
fn escapes_in(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (control | quote.wrapping_sub(ONES) & !quote | backslash.wrapping_sub(ONES) & !backslash) & HIGH
}

/// Writes one record as the JSON object `serde_json` makes of a [`DecisionRecord`], field by
/// field from borrowed values, capping each text as [`DecisionRecord::cap_fields`] does: the
/// writer's path for decisions, which builds no record (building and serializing one cost
/// ~20,000 instructions a decision: eight strings copied or formatted, then a serde walk).
/// The caller names the fields in the record's order; tests hold the two forms equal.
pub(super) struct JsonLine<'w> {
    buf: &'w mut Vec<u8>,
    /// Text made for a field (a formatted value, a capped one) before it is written.
    scratch: &'w mut String,
    clock: &'w mut TimeText,
    /// Fields cut to [`MAX_FIELD_BYTES`].
    cut: u64,
    started: bool,
}

impl<'w> JsonLine<'w> {
    /// A line appended to `buf`, making texts in `scratch` and times with `clock`.
    pub(super) fn new(
        buf: &'w mut Vec<u8>,
        scratch: &'w mut String,
        clock: &'w mut TimeText,
    ) -> Self {
        Self {
            buf,
            scratch,
            clock,
            cut: 0,
            started: false,
        }
    }

    /// Fields to be appended to a line already begun elsewhere: each, the first too, starts
    /// with its comma. What they make is for [`Self::fields`].
    pub(super) fn continuing(
        buf: &'w mut Vec<u8>,
        scratch: &'w mut String,
        clock: &'w mut TimeText,
    ) -> Self {
        Self {
            started: true,
            ..Self::new(buf, scratch, clock)
        }
    }

    /// The bytes of the buffer so far.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// The fields cut so far.
    pub(super) fn cut(&self) -> u64 {
        self.cut
    }

    /// Fields a [`Self::continuing`] line wrote, `cut` of them cut, copied into this line
    /// after its first field.
    pub(super) fn fields(&mut self, json: &[u8], cut: u64) {
        debug_assert!(self.started, "fields follow a line's first field");
        self.buf.extend_from_slice(json);
        self.cut += cut;
    }

    // Inlined, so that each of a line's fourteen names is copied as a constant of known
    // length rather than through a call with a length read at run time.
    #[inline(always)]
    fn key(&mut self, name: &str) {
        let separator = if self.started { b',' } else { b'{' };
        self.started = true;
        self.buf.reserve(name.len() + 4);
        self.buf.extend_from_slice(&[separator, b'"']);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// A JSON string of UTF-8 `value`, escaped as serde_json escapes it.
    fn string(&mut self, value: &[u8]) {
        // serde_json escapes only quotes, backslashes and control characters; a text without
        // them (nearly every one) is copied whole.
        if !needs_escapes(value) {
            self.buf.push(b'"');
            self.buf.extend_from_slice(value);
            self.buf.push(b'"');
        } else {
            // Serializing a `str` into a `Vec` cannot fail; `value` is UTF-8 (see the
            // callers), so nothing is replaced.
            let _ = serde_json::to_writer(&mut *self.buf, &String::from_utf8_lossy(value));
        }
    }

    /// A text field, capped.
    #[inline]
    pub(super) fn text(&mut self, name: &str, value: &str) {
        self.utf8_text(name, value.as_bytes());
    }

    /// A text field given as the bytes of a `str`, capped: for texts kept as bytes, which
    /// need not be checked as UTF-8 again to be copied.
    #[inline]
    pub(super) fn utf8_text(&mut self, name: &str, value: &[u8]) {
        if value.len() <= MAX_FIELD_BYTES {
            self.key(name);
            self.string(value);
        } else {
            self.text_with(name, |text| text.push_str(&String::from_utf8_lossy(value)));
        }
    }

    /// A text field made by `make` into a reused buffer, capped.
    pub(super) fn text_with(&mut self, name: &str, make: impl FnOnce(&mut String)) {
        let mut made = std::mem::take(self.scratch);
        made.clear();
        make(&mut made);
        if cap(&mut made) {
            self.cut += 1;
        }
        self.key(name);
        self.string(made.as_bytes());
        *self.scratch = made;
    }

    /// A text field of this process's own making, from digits and the ASCII letters and
    /// punctuation its format puts between them (a time, a version, a made-up request id):
    /// nothing to escape and far below the cap, so `make` writes it into the line as it is,
    /// without the scan every other text gets or a copy through a buffer.
    pub(super) fn plain_with(&mut self, name: &str, make: impl FnOnce(&mut Vec<u8>)) {
        self.key(name);
        self.buf.push(b'"');
        let start = self.buf.len();
        make(self.buf);
        debug_assert!(
            self.buf
                .get(start..)
                .is_some_and(|made| made.len() <= MAX_FIELD_BYTES
                    && made
                        .iter()
                        .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')),
            "not a plain text: {:?}",
            self.buf.get(start..)
        );
        self.buf.push(b'"');
    }

    /// The time field, as [`rfc3339_millis`] writes it.
    pub(super) fn time(&mut self, name: &str, at: Timestamp) {
        let mut clock = std::mem::take(self.clock);
        self.plain_with(name, |text| clock.push_millis(at, text));
        *self.clock = clock;
    }

    /// A field that is one of the log's own names, or `null`: a constant word of ASCII
    /// letters and digits (an operation, an outcome, a policy type, an AWS error code), which
    /// needs neither escaping nor a cap, so it is written without a scan.
    #[inline]
    pub(super) fn name(&mut self, name: &str, value: Option<&'static str>) {
        match value {
            Some(value) => {
                debug_assert!(
                    value.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "not a name: {value:?}"
                );
                self.key(name);
                self.buf.push(b'"');
                self.buf.extend_from_slice(value.as_bytes());
                self.buf.push(b'"');
            }
            None => {
                self.key(name);
                self.buf.extend_from_slice(b"null");
            }
        }
    }

    /// A number field.
    #[inline]
    pub(super) fn number(&mut self, name: &str, value: u64) {
        self.key(name);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// A boolean field.
    #[inline]
    pub(super) fn boolean(&mut self, name: &str, value: bool) {
        self.key(name);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// Closes the object; the fields cut.
    pub(super) fn finish(self) -> u64 {
        self.buf.push(b'}');
        self.cut
    }
}

// === impl LogFile ===

impl LogFile {
    fn open(
        path: &std::path::Path,
        rotation: Rotation,
        counters: &Arc<Counters>,
    ) -> io::Result<Self> {
        let file = open_append(path)?;
        let meta = file.metadata()?;
        let rotates = meta.is_file() && rotation.max_file_bytes > 0;
        Ok(Self {
            file,
            path: path.to_owned(),
            size: meta.len(),
            rotation: rotates.then_some(rotation),
            counters: Arc::clone(counters),
        })
    }

    /// The path of rotated file `n` (`PATH.n`).
    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Writes `buf`, whose lines end at `ends`, rotating between lines whenever the next
    /// lines would take the file past its bound. Returns the bytes written and the records
    /// (lines) they held, and the first error.
    fn write_lines(&mut self, buf: &[u8], ends: &[usize]) -> (usize, usize, io::Result<()>) {
        let Some(rotation) = self.rotation else {
            let (sent, result) = write_fully(&mut self.file, buf);
            self.size += sent as u64;
            let lines = ends.iter().filter(|&&e| e <= sent).count();
            return (sent, lines, result);
        };
        let (mut start, mut line) = (0usize, 0usize);
        while line < ends.len() {
            // As many whole lines as fit; at least one when the file is empty.
            let room = rotation.max_file_bytes.saturating_sub(self.size);
            let mut last = line;
            while let Some(&end) = ends.get(last) {
                if (end - start) as u64 > room && !(last == line && self.size == 0) {
                    break;
                }
                last += 1;
            }
            if last == line {
                if let Err(error) = self.rotate(rotation.keep) {
                    // Writing on past the bound loses nothing; rotation is tried again later.
                    report(&format!(
                        "decision log: cannot rotate {}: {error}; writing on",
                        self.path.display()
                    ));
                    last = ends.len();
                } else {
                    continue;
                }
            }
            let end = ends.get(last - 1).copied().unwrap_or(start);
            let chunk = buf.get(start..end).unwrap_or_default();
            let (sent, result) = write_fully(&mut self.file, chunk);
            self.size += sent as u64;
            if let Err(error) = result {
                let done = ends.iter().filter(|&&e| e <= start + sent).count();
                return (start + sent, done, Err(error));
            }
            start = end;
            line = last;
        }
        (start, ends.len(), Ok(()))
    }

    /// `PATH.(keep-1)` → `PATH.keep`, ..., `PATH` → `PATH.1`, then a new `PATH`. The old file
    /// is synced first, so a rotated file is complete on disk.
    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        self.file.sync_all()?;
        if keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
        } else {
            for n in (1..keep).rev() {
                match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
            self.file = open_append(&self.path)?;
            self.size = 0;
        }
        self.counters.rotations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// === impl DecisionLogTask ===

impl DecisionLogTask {
    /// Closes the queue, writes everything already queued, flushes (and fsyncs a file), then
    /// returns. Records offered afterwards are dropped and counted.
    pub async fn shutdown(self) {
        let Some(running) = self.running else { return };
        // The writer only goes away after a stop or a panic; either way there is nothing left
        // to tell it, and a panic has already been reported by the runtime.
        let _ = running.stop.send(());
        let _ = running.writer.await;
    }
}

/// Opens `path` for appending, creating it private to the sidecar's user.
fn open_append(path: &std::path::Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The writer task: drains the queue batch by batch until it is stopped (or every sender is
/// gone), then writes what is left and makes it durable.
async fn run_writer(
    mut receiver: mpsc::Receiver<Queued>,
    mut stop: oneshot::Receiver<()>,
    writer: Writer,
    target: String,
    counters: Arc<Counters>,
) {
    let mut writer = Some(writer);
    let mut batch = Vec::with_capacity(BATCH_LIMIT);
    let mut listening = true;
    // Set while writes fail, so a failing disk yields one line on stderr per outage rather
    // than one per batch.
    let mut failing = false;
    loop {
        tokio::select! {
            stopped = &mut stop, if listening => {
                listening = false;
                // An error means the task handle was dropped: keep running, detached, until
                // the senders are gone.
                if stopped.is_ok() {
                    // Closing refuses new records but still yields the queued ones below.
                    receiver.close();
                }
            }
            received = receiver.recv_many(&mut batch, BATCH_LIMIT) => {
                if received == 0 {
                    break;
                }
                if listening && batch.len() < BATCH_LIMIT / 4 {
                    tokio::time::sleep(LINGER).await;
                    while batch.len() < BATCH_LIMIT {
                        match receiver.try_recv() {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                }
                let count = batch.len() as u64;
                let Some(current) = writer.take() else {
                    counters.write_errors.fetch_add(count, Ordering::Relaxed);
                    batch.clear();
                    continue;
                };
                let job = tokio::task::spawn_blocking(move || {
                    let mut current = current;
                    let mut batch = batch;
                    let outcome = current.write_batch(&mut batch);
                    (current, batch, outcome)
                });
                let (returned, reused, outcome) = match job.await {
                    Ok(done) => done,
                    Err(error) => {
                        // The blocking pool is shutting down (or the write panicked): the
                        // sink went with it, so later batches are counted as lost.
                        counters.write_errors.fetch_add(count, Ordering::Relaxed);
                        report(&format!("decision log: the writer for {target} stopped: {error}"));
                        batch = Vec::with_capacity(BATCH_LIMIT);
                        continue;
                    }
                };
                writer = Some(returned);
                batch = reused;
                counters.written.fetch_add(outcome.written, Ordering::Relaxed);
                counters.truncated.fetch_add(outcome.truncated, Ordering::Relaxed);
                counters.write_errors.fetch_add(outcome.failed, Ordering::Relaxed);
                match outcome.error {
                    Some(error) if !failing => {
                        failing = true;
                        report(&format!(
                            "decision log: cannot write to {target}: {error}; \
                             records are lost until it recovers"
                        ));
                    }
                    Some(_) => {}
                    None => failing = false,
                }
            }
        }
    }
    let Some(mut last) = writer else { return };
    let synced = tokio::task::spawn_blocking(move || last.sync()).await;
    match synced {
        Ok(Ok(())) => {}
        Ok(Err(error)) => report(&format!("decision log: cannot sync {target}: {error}")),
        Err(error) => report(&format!("decision log: cannot sync {target}: {error}")),
    }
}

// === impl Writer ===

impl Writer {
    /// A line appended to the batch's buffer.
    fn line(&mut self) -> JsonLine<'_> {
        JsonLine::new(&mut self.buf, &mut self.scratch, &mut self.clock)
    }

    /// Serializes `batch` (leaving it empty) and writes it in one go. Runs on the blocking
    /// pool: both steps may take a while on a large batch or a slow disk.
    fn write_batch(&mut self, batch: &mut Vec<Queued>) -> BatchOutcome {
        self.buf.clear();
        if self.torn {
            self.buf.push(b'\n');
        }
        let mut lines = 0u64;
        let mut failed = 0u64;
        let mut truncated = 0u64;
        let mut ends = Vec::with_capacity(batch.len());
        for queued in batch.drain(..) {
            let record = match queued {
                Queued::Built(record) => record,
                Queued::Authorize(decision) => {
                    truncated += decision.write_json(self.line());
                    // JSON strings escape every newline: this is the only raw one.
                    self.buf.push(b'\n');
                    ends.push(self.buf.len());
                    lines += 1;
                    continue;
                }
            };
            let start = self.buf.len();
            // serde_json escapes quotes, newlines and control characters, so the only raw
            // newline is the one pushed after it: one record, one line.
            if serde_json::to_writer(&mut self.buf, &record).is_ok() {
                self.buf.push(b'\n');
                ends.push(self.buf.len());
                lines += 1;
            } else {
                self.buf.truncate(start);
                failed += 1;
            }
        }
        if lines == 0 {
            return BatchOutcome {
                written: 0,
                failed,
                error: None,
                truncated,
            };
        }
        let (sent, result) = match &mut self.output {
            Output::Stdout(stdout) => {
                let mut lock = stdout.lock();
                let (sent, result) = write_fully(&mut lock, &self.buf);
                (sent, result.and_then(|()| lock.flush()))
            }
            Output::File(file) => {
                let (sent, done, result) = file.write_lines(&self.buf, &ends);
                self.torn = sent > 0 && sent < self.buf.len() && !ends.contains(&sent);
                return match result {
                    Ok(()) => BatchOutcome {
                        written: lines,
                        failed,
                        error: None,
                        truncated,
                    },
                    // Whole lines before the failure were written; the rest are lost, and
                    // counted.
                    Err(error) => BatchOutcome {
                        written: done as u64,
                        failed: failed + lines - done as u64,
                        error: Some(error),
                        truncated,
                    },
                };
            }
        };
        self.torn = sent > 0 && sent < self.buf.len();
        match result {
            Ok(()) => BatchOutcome {
                written: lines,
                failed,
                error: None,
                truncated,
            },
            Err(error) => BatchOutcome {
                written: 0,
                failed: failed + lines,
                error: Some(error),
                truncated,
            },
        }
    }

    /// Flushes standard output, or fsyncs the file.
    fn sync(&mut self) -> io::Result<()> {
        match &mut self.output {
            Output::Stdout(stdout) => stdout.lock().flush(),
            Output::File(log) => log.file.sync_all(),
        }
    }
}

/// `write_all` that also says how many bytes went out, so a torn line can be closed.
fn write_fully(out: &mut impl Write, data: &[u8]) -> (usize, io::Result<()>) {
    let mut sent = 0;
    while let Some(rest) = data.get(sent..).filter(|rest| !rest.is_empty()) {
        match out.write(rest) {
            Ok(0) => return (sent, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => sent += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return (sent, Err(error)),
        }
    }
    (sent, Ok(()))
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout(_) => f.write_str("Stdout"),
            Self::File(log) => f.debug_tuple("File").field(&log.path).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicUsize;

    /// A path in the temp directory no other test (or run) uses.
    fn temp_path(tag: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        std::env::temp_dir().join(format!(
            "iamlet-decision-log-{tag}-{}-{}-{n}.jsonl",
            std::process::id(),
            Timestamp::now().0
        ))
    }

    fn file_config(path: &std::path::Path, capacity: usize) -> DecisionLogConfig {
        DecisionLogConfig {
            sink: LogSink::File(path.to_path_buf()),
            deny_only: false,
            sample_rate: 1.0,
            capacity,
            rotation: Rotation::default(),
        }
    }

    fn record(request_id: &str, decision: &'static str) -> DecisionRecord {
        DecisionRecord {
            time: "2024-05-01T12:00:00.123Z".to_owned(),
            request_id: request_id.to_owned(),
            operation: "Authorize",
            tenant: "acme".to_owned(),
            principal: "arn:aws:iam::123456789012:role/app".to_owned(),
            action: "s3:GetObject".to_owned(),
            resource: "arn:aws:s3:::bucket/key".to_owned(),
            decision,
            error_code: None,
            policy_type: Some("Identity"),
            statement: Some("p-1#0(AllowRead)".to_owned()),
            snapshot_version: "3.17".to_owned(),
            latency_us: 42,
            cached: false,
        }
    }

    fn read_lines(path: &std::path::Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines().map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn records_reach_the_file_as_json_lines_with_every_field() {
        let path = temp_path("fields");
        let (log, task) = DecisionLog::spawn(file_config(&path, 16)).unwrap();
        log.record(record("req-1", "Allow"));
        log.record(DecisionRecord {
            operation: "AssumeRole",
            decision: "Error",
            error_code: Some("AccessDenied"),
            policy_type: None,
            statement: None,
            cached: true,
            latency_us: 7,
            ..record("req-2", "Error")
        });
        task.shutdown().await;
        assert_eq!(
            (log.written(), log.dropped(), log.write_errors()),
            (2, 0, 0)
        );

        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            first,
            serde_json::json!({
                "time": "2024-05-01T12:00:00.123Z",
                "request_id": "req-1",
                "operation": "Authorize",
                "tenant": "acme",
                "principal": "arn:aws:iam::123456789012:role/app",
                "action": "s3:GetObject",
                "resource": "arn:aws:s3:::bucket/key",
                "decision": "Allow",
                "error_code": null,
                "policy_type": "Identity",
                "statement": "p-1#0(AllowRead)",
                "snapshot_version": "3.17",
                "latency_us": 42,
                "cached": false
            })
        );
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["request_id"], "req-2");
        assert_eq!(second["operation"], "AssumeRole");
        assert_eq!(second["decision"], "Error");
        assert_eq!(second["error_code"], "AccessDenied");
        assert_eq!(second["policy_type"], serde_json::Value::Null);
        assert_eq!(second["statement"], serde_json::Value::Null);
        assert_eq!(second["latency_us"], 7);
        assert_eq!(second["cached"], true);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_second_run_appends_to_the_file() {
        let path = temp_path("append");
        for id in ["first", "second"] {
            let (log, task) = DecisionLog::spawn(file_config(&path, 4)).unwrap();
            log.record(record(id, "Allow"));
            task.shutdown().await;
        }
        let ids: Vec<String> = read_lines(&path)
            .iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids, ["first", "second"]);
        std::fs::remove_file(&path).unwrap();
    }

    fn wants_log(deny_only: bool, sample_rate: f64) -> (Arc<DecisionLog>, DecisionLogTask) {
        DecisionLog::spawn(DecisionLogConfig {
            sink: LogSink::Stdout,
            deny_only,
            sample_rate,
            capacity: 1,
            rotation: Rotation::default(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn item6_every_field_is_capped_and_counted() {
        // Issue #13, item 6: a 3 MB resource or request id is not a 3 MB line.
        let path = temp_path("capped");
        let (log, task) = DecisionLog::spawn(file_config(&path, 16)).unwrap();
        let huge = "é".repeat(1_500_000);
        log.record(DecisionRecord {
            request_id: huge.clone(),
            resource: format!("arn:aws:s3:::{huge}"),
            ..record("x", "Allow")
        });
        log.record(record("small", "Allow"));
        task.shutdown().await;
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].len() < 3 * MAX_FIELD_BYTES,
            "{} bytes",
            lines[0].len()
        );
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        for field in ["request_id", "resource"] {
            let text = first[field].as_str().unwrap();
            assert!(
                text.len() <= MAX_FIELD_BYTES && text.ends_with(TRUNCATED_MARK),
                "{field}"
            );
        }
        assert!(first["resource"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:s3:::é"));
        assert_eq!(log.truncated(), 2);
        assert_eq!(
            read_lines(&path)[1],
            serde_json::to_string(&record("small", "Allow")).unwrap()
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn item6_the_file_rotates_by_size_keeps_n_files_and_never_splits_a_record() {
        let path = temp_path("rotate");
        let line = serde_json::to_string(&record("req-0000", "Allow"))
            .unwrap()
            .len()
            + 1;
        // Room for 3 records per file; 2 rotated files kept.
        let config = DecisionLogConfig {
            rotation: Rotation {
                max_file_bytes: (3 * line + line / 2) as u64,
                keep: 2,
            },
            ..file_config(&path, 256)
        };
        let (log, task) = DecisionLog::spawn(config).unwrap();
        for i in 0..20 {
            log.record(record(&format!("req-{i:04}"), "Allow"));
            if i % 7 == 0 {
                // Several batches, so rotation happens inside and between them.
                tokio::time::sleep(LINGER * 2).await;
            }
        }
        task.shutdown().await;
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
        assert!(!rotated(3).exists(), "only 2 rotated files are kept");
        let mut ids = Vec::new();
        for file in [rotated(2), rotated(1), path.clone()] {
            let lines = read_lines(&file);
            assert!(
                !lines.is_empty() && lines.len() <= 3,
                "{}: {lines:?}",
                file.display()
            );
            assert!(std::fs::metadata(&file).unwrap().len() <= (3 * line + line / 2) as u64);
            for l in lines {
                // Every line a whole record.
                let v: serde_json::Value = serde_json::from_str(&l).unwrap();
                ids.push(v["request_id"].as_str().unwrap().to_owned());
            }
        }
        // The newest records, in order, none split or repeated: the oldest went with the
        // files beyond the retention count.
        let expected: Vec<String> = (20 - ids.len()..20)
            .map(|i| format!("req-{i:04}"))
            .collect();
        assert_eq!(ids, expected);
        assert!(ids.len() >= 7, "{ids:?}");
        assert_eq!(log.written(), 20);
        assert!(log.rotations() >= 6, "{}", log.rotations());
        for file in [rotated(2), rotated(1), path] {
            std::fs::remove_file(file).unwrap();
        }
    }

    #[tokio::test]
    async fn item6_a_record_larger_than_the_bound_gets_a_file_of_its_own() {
        let path = temp_path("rotate-big");
        let config = DecisionLogConfig {
            rotation: Rotation {
                max_file_bytes: 10,
                keep: 1,
            },
            ..file_config(&path, 16)
        };
        let (log, task) = DecisionLog::spawn(config).unwrap();
        log.record(record("a", "Allow"));
        tokio::time::sleep(LINGER * 2).await;
        log.record(record("b", "Allow"));
        task.shutdown().await;
        let rotated = PathBuf::from(format!("{}.1", path.display()));
        assert_eq!(read_lines(&rotated).len(), 1);
        assert_eq!(read_lines(&path).len(), 1);
        assert!(read_lines(&path)[0].contains("\"b\""));
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&rotated).unwrap();
    }

    #[tokio::test]
    async fn deny_only_keeps_denies_and_errors_only_and_all_of_them() {
        // A sample rate that would drop some denies if it applied: deny_only keeps them all.
        let (log, task) = wants_log(true, 0.1);
        for i in 0..1_000 {
            let key = sample_key(&format!("req-{i}"));
            assert!(log.wants(true, key), "deny {i}");
            assert!(!log.wants(false, key), "allow {i}");
        }
        task.shutdown().await;
    }

    #[tokio::test]
    async fn sample_rate_zero_keeps_nothing_and_one_keeps_everything() {
        let (none, none_task) = wants_log(false, 0.0);
        let (all, all_task) = wants_log(false, 1.0);
        for i in 0..1_000 {
            let key = sample_key(&format!("req-{i}"));
            for deny in [false, true] {
                assert!(!none.wants(deny, key), "rate 0, {i}");
                assert!(all.wants(deny, key), "rate 1, {i}");
            }
        }
        // The extremes of the key space too.
        for key in [0, u64::MAX] {
            assert!(!none.wants(false, key));
            assert!(all.wants(false, key));
        }
        none_task.shutdown().await;
        all_task.shutdown().await;
    }

    #[tokio::test]
    async fn a_quarter_sample_keeps_about_a_quarter_deterministically() {
        let (log, task) = wants_log(false, 0.25);
        let keys: Vec<u64> = (0..10_000)
            .map(|i| sample_key(&format!("req-{i:05}")))
            .collect();
        let kept = keys.iter().filter(|&&key| log.wants(false, key)).count();
        assert!((2_000..=3_000).contains(&kept), "kept {kept} of 10000");
        // Denies are sampled too, by the same rule.
        let denies = keys.iter().filter(|&&key| log.wants(true, key)).count();
        assert_eq!(denies, kept);
        // The same key always gets the same answer.
        let again = keys.iter().filter(|&&key| log.wants(false, key)).count();
        assert_eq!(again, kept);
        task.shutdown().await;
    }

    #[test]
    fn sample_key_is_fnv1a_64() {
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(sample_key(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(sample_key("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(sample_key("foobar"), 0x8594_4171_f739_67e8);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // The test runs on a current-thread runtime: the writer cannot run until this task
        // yields, so only `capacity` records fit and record() must not wait for room.
        let path = temp_path("full");
        let (log, task) = DecisionLog::spawn(file_config(&path, 4)).unwrap();
        let started = std::time::Instant::now();
        for i in 0..100 {
            log.record(record(&format!("req-{i}"), "Allow"));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(log.dropped(), 96);
        assert_eq!(log.written(), 0);
        task.shutdown().await;
        assert_eq!((log.written(), log.dropped()), (4, 96));
        let lines = read_lines(&path);
        let ids: Vec<String> = lines
            .iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_writes_everything_queued_first() {
        let path = temp_path("shutdown");
        let (log, task) = DecisionLog::spawn(file_config(&path, 10_000)).unwrap();
        for i in 0..5_000 {
            log.record(record(&format!("req-{i}"), "ImplicitDeny"));
        }
        task.shutdown().await;
        assert_eq!(
            (log.written(), log.dropped(), log.write_errors()),
            (5_000, 0, 0)
        );
        let lines = read_lines(&path);
        let ids: BTreeSet<String> = lines
            .iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["request_id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(lines.len(), 5_000);
        assert_eq!(ids.len(), 5_000);

        // After shutdown the queue is closed: records are dropped and counted, not written.
        log.record(record("late", "Allow"));
        assert_eq!(log.dropped(), 1);
        assert_eq!(read_lines(&path).len(), 5_000);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn one_record_is_one_line_whatever_its_fields_hold() {
        let path = temp_path("escape");
        let canary = "AKIACANARY\"secret\nline2\r\t\u{0}\u{1b}[31m\\\u{2028}end";
        let (log, task) = DecisionLog::spawn(file_config(&path, 4)).unwrap();
        log.record(DecisionRecord {
            resource: canary.to_owned(),
            ..record("req-\"1\"\n", "ExplicitDeny")
        });
        task.shutdown().await;

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        assert!(text.ends_with('\n'));
        assert!(!text.contains('\r') && !text.contains('\u{0}') && !text.contains('\u{1b}'));
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["resource"], canary);
        assert_eq!(value["request_id"], "req-\"1\"\n");
        // The canary is in the field the caller put it in, and nowhere else.
        let holding: Vec<&String> = value
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.as_str().is_some_and(|s| s.contains("AKIACANARY")))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(holding, ["resource"]);
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn off_spawns_nothing_and_wants_nothing() {
        let metrics = tokio::runtime::Handle::current().metrics();
        let before = metrics.num_alive_tasks();
        let (log, task) = DecisionLog::spawn(DecisionLogConfig {
            sink: DecisionLogConfig::parse_sink("off").unwrap(),
            ..DecisionLogConfig::default()
        })
        .unwrap();
        assert_eq!(metrics.num_alive_tasks(), before);
        for key in [0, 1, u64::MAX, sample_key("req-1")] {
            assert!(!log.wants(true, key));
            assert!(!log.wants(false, key));
        }
        log.record(record("req-1", "ExplicitDeny"));
        assert_eq!(
            (log.written(), log.dropped(), log.write_errors()),
            (0, 0, 0)
        );
        task.shutdown().await;

        // The same count does see a real sink's writer, so the check above can fail.
        let (_stdout, stdout_task) = wants_log(false, 1.0);
        assert_eq!(metrics.num_alive_tasks(), before + 1);
        stdout_task.shutdown().await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_refused_write_is_counted_not_written() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let full = std::path::Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let (log, task) = DecisionLog::spawn(file_config(full, 8)).unwrap();
        for i in 0..3 {
            log.record(record(&format!("req-{i}"), "Allow"));
        }
        task.shutdown().await;
        assert_eq!(
            (log.written(), log.write_errors(), log.dropped()),
            (0, 3, 0)
        );
    }

    #[test]
    fn sinks_parse_from_flag_text() {
        assert_eq!(DecisionLogConfig::parse_sink("off").unwrap(), LogSink::Off);
        assert_eq!(
            DecisionLogConfig::parse_sink("stdout").unwrap(),
            LogSink::Stdout
        );
        assert_eq!(DecisionLogConfig::parse_sink("-").unwrap(), LogSink::Stdout);
        assert_eq!(
            DecisionLogConfig::parse_sink("/var/log/iamlet/decisions.jsonl").unwrap(),
            LogSink::File(PathBuf::from("/var/log/iamlet/decisions.jsonl"))
        );
        assert!(matches!(
            DecisionLogConfig::parse_sink(""),
            Err(DecisionLogError::EmptySink)
        ));
    }

    #[test]
    fn validate_rejects_rates_outside_zero_to_one_and_zero_capacity() {
        for rate in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            let config = DecisionLogConfig {
                sample_rate: rate,
                ..DecisionLogConfig::default()
            };
            assert!(
                matches!(config.validate(), Err(DecisionLogError::SampleRate(_))),
                "{rate}"
            );
        }
        for rate in [0.0, 0.5, 1.0] {
            let config = DecisionLogConfig {
                sample_rate: rate,
                ..DecisionLogConfig::default()
            };
            assert!(config.validate().is_ok(), "{rate}");
        }
        let config = DecisionLogConfig {
            capacity: 0,
            ..DecisionLogConfig::default()
        };
        assert!(matches!(config.validate(), Err(DecisionLogError::Capacity)));
    }

    #[tokio::test]
    async fn spawn_refuses_bad_config_and_names_an_unopenable_file() {
        let bad = DecisionLogConfig {
            sample_rate: 2.0,
            sink: LogSink::Stdout,
            ..DecisionLogConfig::default()
        };
        assert!(matches!(
            DecisionLog::spawn(bad),
            Err(DecisionLogError::SampleRate(_))
        ));
        let missing = temp_path("no-such-dir").join("decisions.jsonl");
        let Err(error) = DecisionLog::spawn(file_config(&missing, 4)) else {
            panic!("opened a file in a missing directory");
        };
        assert!(matches!(error, DecisionLogError::Open { .. }));
        assert!(error.to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
        let result = DecisionLog::spawn(DecisionLogConfig {
            sink: LogSink::Stdout,
            ..DecisionLogConfig::default()
        });
        assert!(matches!(result, Err(DecisionLogError::NoRuntime)));
    }

    #[test]
    fn times_have_exactly_three_fraction_digits() {
        assert_eq!(
            rfc3339_millis(Timestamp::from_epoch_seconds(0)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_millis(Timestamp(1_700_000_000_123_456_789)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(rfc3339_millis(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_lines_strings_are_escaped_as_serde_json_escapes_them() {
        // Every byte below 0x20, both characters JSON escapes, and neighbours that it does
        // not (DEL, non-ASCII), alone, leading, trailing and among plain text of every length
        // around a vector's width.
        let mut texts: Vec<String> = (0u8..0x20).map(|b| char::from(b).to_string()).collect();
        texts.extend(["\"", "\\", "\u{7f}", "é", "😀", "", "plain", "a/b:c*d?"].map(String::from));
        let specials = ["\"", "\\", "\n", "\u{1f}", "\u{7f}"];
        for len in [1, 7, 15, 16, 17, 31, 32, 33, 64, 100] {
            let plain = "x".repeat(len);
            texts.push(plain.clone());
            for special in specials {
                texts.push(format!("{special}{plain}"));
                texts.push(format!("{plain}{special}"));
                texts.push(format!(
                    "{}{special}{}",
                    &plain[..len / 2],
                    &plain[len / 2..]
                ));
            }
        }
        let (mut scratch, mut clock) = (String::new(), TimeText::default());
        for text in texts {
            let mut buf = Vec::new();
            let mut line = JsonLine::new(&mut buf, &mut scratch, &mut clock);
            line.text("t", &text);
            line.finish();
            let expected = format!("{{\"t\":{}}}", serde_json::to_string(&text).unwrap());
            assert_eq!(String::from_utf8(buf).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn the_escape_scan_finds_every_escaped_byte_at_every_place() {
        let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        // Every byte value at every place of texts up to two words and a bit long (whole
        // words, the ragged end, the padded short text).
        for len in 0..=17 {
            assert!(!needs_escapes(&vec![b'x'; len]), "{len} plain bytes");
            for at in 0..len {
                for b in 0..=u8::MAX {
                    let mut text = vec![b'x'; len];
                    text[at] = b;
                    assert_eq!(
                        needs_escapes(&text),
                        escaped(b),
                        "{b:#04x} at {at} of {len}"
                    );
                }
            }
        }
        // Every pair of neighbours, for the borrows one byte's test passes to the next.
        for first in 0..=u8::MAX {
            for second in 0..=u8::MAX {
                let text = [b'x', b'x', b'x', first, second, b'x', b'x', b'x', b'x'];
                assert_eq!(
                    needs_escapes(&text),
                    escaped(first) || escaped(second),
                    "{first:#04x} {second:#04x}"
                );
            }
        }
    }

    #[test]
    fn a_reused_clock_makes_each_time_as_a_fresh_one_does() {
        // Within a second, across seconds, days and years, backwards, and the fraction's
        // every digit position.
        let base = 1_700_000_000_000i64;
        let times = [
            0,
            7,
            58,
            999,
            1_000,
            1_001,
            123,
            86_399_999,
            86_400_000,
            5,
            -1,
            -1_000,
            -1_001,
            31_536_000_000,
            31_535_999_999,
            40,
            400,
            4,
        ];
        let mut clock = TimeText::default();
        for offset in times {
            for base in [base, 0] {
                let at = Timestamp(i128::from(base + offset) * 1_000_000 + 654_321);
                assert_eq!(clock.millis(at), rfc3339_formatted(at), "{offset}");
            }
        }
    }

    /// The text the record's time had before [`TimeText`]: the reference it must match.
    fn rfc3339_formatted(at: Timestamp) -> String {
        let millis = at.epoch_millis();
        let whole = Timestamp::from_epoch_seconds(millis.div_euclid(1000)).to_string();
        let seconds = whole.strip_suffix('Z').unwrap_or(&whole);
        format!("{seconds}.{:03}Z", millis.rem_euclid(1000))
    }
}
