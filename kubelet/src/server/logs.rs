//! Container logs as upstream's kuberuntime `ReadLogs`: the runtime writes each
//! container's output to a file in the CRI log format, one record a line:
//!
//! `<RFC3339Nano timestamp> <stdout|stderr> <F|P>[:<more tags>] <text>`
//!
//! where `P` marks a partial record (the runtime split a long line; the next record
//! continues it) and `F` a full one. Reading strips the prefix, joins partial records,
//! and applies the PodLogOptions: tailLines (counted on the file's records, as upstream),
//! sinceSeconds/sinceTime, timestamps, limitBytes and follow.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How often a followed log file is checked for new data.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often, while following and no data arrives, the container is checked for exit.
const RUNNING_CHECK: Duration = Duration::from_secs(1);

/// Which of the container's streams a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One record of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: Timestamp,
    pub stream: Stream,
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one line (without its newline). `None` for a malformed line, which upstream
/// also skips.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let ts = std::str::from_utf8(fields.next()?).ok()?;
    let timestamp: Timestamp = ts.parse().ok()?;
    let stream = match fields.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let tags = fields.next()?;
    let partial = match tags.split(|&b| b == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        timestamp,
        stream,
        partial,
        text: fields.next().unwrap_or_default(),
    })
}

/// The PodLogOptions the kubelet's `/containerLogs` endpoint understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    /// `None`: the whole file; `Some(0)`: nothing.
    pub tail_lines: Option<u64>,
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<u64>,
    /// Only this stream (PodLogOptions.stream); `None` for both.
    pub stream: Option<Stream>,
}

fn parse_bool(query: &HashMap<String, String>, key: &str) -> Result<bool, String> {
    match query.get(key).map(String::as_str) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(format!("{key}: invalid value {other:?}")),
    }
}

fn parse_int(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    match query.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{key}: invalid value {v:?}")),
    }
}

impl LogOptions {
    /// From the query of a `/containerLogs` request, as the API server sends it.
    pub fn from_query(query: &HashMap<String, String>, now: Timestamp) -> Result<Self, String> {
        let mut opts = LogOptions {
            follow: parse_bool(query, "follow")?,
            previous: parse_bool(query, "previous")?,
            timestamps: parse_bool(query, "timestamps")?,
            ..Default::default()
        };
        if let Some(n) = parse_int(query, "tailLines")? {
            if n < 0 {
                return Err("tailLines: must be greater than or equal to 0".into());
            }
            opts.tail_lines = Some(n as u64);
        }
        if let Some(n) = parse_int(query, "limitBytes")? {
            if n < 1 {
                return Err("limitBytes: must be greater than 0".into());
            }
            opts.limit_bytes = Some(n as u64);
        }
        let since_seconds = parse_int(query, "sinceSeconds")?;
        let since_time = query.get("sinceTime").filter(|s| !s.is_empty());
        match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err("at most one of sinceTime or sinceSeconds may be specified".into())
            }
            (Some(s), None) => {
                if s < 1 {
                    return Err("sinceSeconds: must be greater than 0".into());
                }
                opts.since = Some(now - jiff::SignedDuration::from_secs(s));
            }
            (None, Some(t)) => {
                opts.since = Some(
                    t.parse()
                        .map_err(|_| format!("sinceTime: invalid value {t:?}"))?,
                );
            }
            (None, None) => {}
        }
        opts.stream = match query.get("stream").map(String::as_str) {
            None | Some("") | Some("All") => None,
            Some("Stdout") => Some(Stream::Stdout),
            Some("Stderr") => Some(Stream::Stderr),
            Some(other) => return Err(format!("stream: Unsupported value: {other:?}")),
        };
        Ok(opts)
    }
}

/// Turns records into the bytes sent to the client.
#[derive(Debug)]
pub struct LogWriter {
    timestamps: bool,
    since: Option<Timestamp>,
    stream: Option<Stream>,
    remaining: Option<u64>,
    /// Whether the previous record of each stream ended its line (partial records of one
    /// line get one timestamp, at its start).
    at_line_start: [bool; 2],
}

impl LogWriter {
    pub fn new(opts: &LogOptions) -> Self {
        LogWriter {
            timestamps: opts.timestamps,
            since: opts.since,
            stream: opts.stream,
            remaining: opts.limit_bytes,
            at_line_start: [true, true],
        }
    }

    /// Whether limitBytes has been reached: nothing more will be written.
    pub fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The output for one line of the file, appended to `out`.
    pub fn write_line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let Some(record) = parse_record(line) else {
            return;
        };
        if self.since.is_some_and(|since| record.timestamp < since) {
            return;
        }
        if self.stream.is_some_and(|s| s != record.stream) {
            return;
        }
        let index = record.stream as usize;
        let start = out.len();
        if self.timestamps && self.at_line_start[index] {
            out.extend_from_slice(record.timestamp.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(record.text);
        if !record.partial {
            out.push(b'\n');
        }
        self.at_line_start[index] = !record.partial;
        if let Some(remaining) = self.remaining.as_mut() {
            let written = (out.len() - start) as u64;
            if written > *remaining {
                out.truncate(start + *remaining as usize);
                *remaining = 0;
            } else {
                *remaining -= written;
            }
        }
    }
}

/// Offset of the start of the last `n` lines of `file`.
pub fn tail_offset(file: &mut std::fs::File, n: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek};
    const CHUNK: u64 = 64 * 1024;
    let len = file.seek(SeekFrom::End(0))?;
    if n == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut seen = 0u64;
    let mut buf = vec![0u8; CHUNK as usize];
    // The file's final newline ends the last line; it does not start one.
    let mut skip_final = true;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let size = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..size])?;
        for i in (0..size).rev() {
            if buf[i] != b'\n' {
                skip_final = false;
                continue;
            }
            if skip_final {
                skip_final = false;
                continue;
            }
            seen += 1;
            if seen == n {
                return Ok(start + i as u64 + 1);
            }
        }
        end = start;
    }
    Ok(0)
}

/// Whether the container still runs; a followed log ends once it does not and the file
/// has no more data.
pub type RunningFn = Box<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>;

/// Reads `path` according to `opts` into a channel of chunks; the reading ends when the
/// receiver is dropped (the client went away).
pub fn stream(path: PathBuf, opts: LogOptions, running: RunningFn) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        if let Err(e) = read_into(&path, &opts, running, &tx).await {
            tracing::debug!(path = %path.display(), error = %e, "reading container log");
        }
    });
    rx
}

async fn read_into(
    path: &Path,
    opts: &LogOptions,
    running: RunningFn,
    tx: &mpsc::Sender<Bytes>,
) -> std::io::Result<()> {
    let mut std_file = std::fs::File::open(path)?;
    let start = match opts.tail_lines {
        Some(n) => tail_offset(&mut std_file, n)?,
        None => 0,
    };
    let mut file = tokio::fs::File::from_std(std_file);
    file.seek(SeekFrom::Start(start)).await?;
    let mut inode = inode_of(&file).await;
    let mut reader = BufReader::new(file);
    let mut writer = LogWriter::new(opts);
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut idle = Duration::ZERO;
    loop {
        let n = reader.read_until(b'\n', &mut line).await?;
        if n > 0 && line.ends_with(b"\n") {
            line.pop();
            writer.write_line(&line, &mut out);
            line.clear();
            idle = Duration::ZERO;
            // Batch lines into chunks of reasonable size.
            if out.len() >= 32 * 1024 && !send(tx, &mut out).await {
                return Ok(());
            }
            if writer.done() {
                break;
            }
            continue;
        }
        // End of the data written so far (a line without its newline stays in `line`
        // until the runtime finishes it).
        if !send(tx, &mut out).await || !opts.follow {
            return Ok(());
        }
        if tx.is_closed() {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_POLL).await;
        idle += FOLLOW_POLL;
        // Rotation: the runtime or the kubelet moved the file away and started a new one.
        if let Ok(current) = tokio::fs::metadata(path).await {
            if Some(inode_from(&current)) != inode {
                let file = tokio::fs::File::open(path).await?;
                inode = inode_of(&file).await;
                reader = BufReader::new(file);
                line.clear();
                continue;
            }
        }
        if idle >= RUNNING_CHECK {
            idle = Duration::ZERO;
            if !running().await {
                // Drain what was written before the exit, then stop.
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await?;
                line.extend_from_slice(&rest);
                for l in line.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    if writer.done() {
                        break;
                    }
                    writer.write_line(l, &mut out);
                }
                send(tx, &mut out).await;
                return Ok(());
            }
        }
    }
    send(tx, &mut out).await;
    Ok(())
}

use tokio::io::AsyncReadExt;

async fn send(tx: &mpsc::Sender<Bytes>, out: &mut Vec<u8>) -> bool {
    if out.is_empty() {
        return true;
    }
    tx.send(Bytes::from(std::mem::take(out))).await.is_ok()
}

fn inode_from(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

async fn inode_of(file: &tokio::fs::File) -> Option<(u64, u64)> {
    file.metadata().await.ok().map(|m| inode_from(&m))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    const LOG: &str = "\
2024-01-01T00:00:01.000000001Z stdout F one
2024-01-01T00:00:02.5Z stderr F two
2024-01-01T00:00:03Z stdout P thr
2024-01-01T00:00:03.1Z stdout P e
2024-01-01T00:00:03.2Z stdout F e
garbage line
2024-01-01T00:00:04Z stdout F four
";

    fn render(opts: &LogOptions, text: &str) -> String {
        let mut w = LogWriter::new(opts);
        let mut out = Vec::new();
        for line in text.lines() {
            w.write_line(line.as_bytes(), &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn records() {
        let r = parse_record(b"2024-01-01T00:00:03Z stdout P:x  a b").unwrap();
        assert!(r.partial);
        assert_eq!(r.stream, Stream::Stdout);
        assert_eq!(r.text, b" a b");
        assert_eq!(
            parse_record(b"2024-01-01T00:00:03Z stderr F").unwrap().text,
            b""
        );
        assert!(parse_record(b"2024-01-01T00:00:03Z stdin F x").is_none());
        assert!(parse_record(b"yesterday stdout F x").is_none());
    }

    #[test]
    fn partial_lines_are_joined() {
        assert_eq!(
            render(&LogOptions::default(), LOG),
            "one\ntwo\nthree\nfour\n"
        );
    }

    #[test]
    fn timestamps_prefix_each_line_once() {
        let opts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(&opts, LOG),
            "2024-01-01T00:00:01.000000001Z one\n2024-01-01T00:00:02.5Z two\n\
             2024-01-01T00:00:03Z three\n2024-01-01T00:00:04Z four\n"
        );
    }

    #[test]
    fn since_and_stream_filter() {
        let opts = LogOptions {
            since: Some("2024-01-01T00:00:02.5Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(render(&opts, LOG), "two\nthree\nfour\n");
        let opts = LogOptions {
            stream: Some(Stream::Stderr),
            ..Default::default()
        };
        assert_eq!(render(&opts, LOG), "two\n");
    }

    #[test]
    fn limit_bytes_cuts_output() {
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        let mut w = LogWriter::new(&opts);
        let mut out = Vec::new();
        for line in LOG.lines() {
            w.write_line(line.as_bytes(), &mut out);
        }
        assert_eq!(out, b"one\ntw");
        assert!(w.done());
    }

    #[test]
    fn tail_counts_file_lines() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"a\nb\nc\n").unwrap();
        assert_eq!(tail_offset(&mut f, 1).unwrap(), 4);
        assert_eq!(tail_offset(&mut f, 2).unwrap(), 2);
        assert_eq!(tail_offset(&mut f, 3).unwrap(), 0);
        assert_eq!(tail_offset(&mut f, 10).unwrap(), 0);
        assert_eq!(tail_offset(&mut f, 0).unwrap(), 6);
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"a\nb").unwrap();
        assert_eq!(tail_offset(&mut f, 1).unwrap(), 2);
    }

    #[test]
    fn query_options() {
        let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let q: HashMap<String, String> = [
            ("follow", "true"),
            ("tailLines", "5"),
            ("sinceSeconds", "60"),
            ("timestamps", "true"),
            ("limitBytes", "100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let o = LogOptions::from_query(&q, now).unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(5));
        assert_eq!(o.limit_bytes, Some(100));
        assert_eq!(o.since, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        let mut bad = q.clone();
        bad.insert("sinceTime".into(), "2024-01-01T00:00:00Z".into());
        assert!(LogOptions::from_query(&bad, now).is_err());
    }

    async fn collect(mut rx: mpsc::Receiver<Bytes>) -> String {
        let mut s = Vec::new();
        while let Some(b) = rx.recv().await {
            s.extend_from_slice(&b);
        }
        String::from_utf8(s).unwrap()
    }

    #[tokio::test]
    async fn reads_files_with_tail_and_follows_until_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, LOG).unwrap();
        let not_running: fn() -> RunningFn = || Box::new(|| Box::pin(async { false }));
        let opts = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(
            collect(stream(path.clone(), opts, not_running())).await,
            "four\n"
        );

        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let opts = LogOptions {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        let mut rx = stream(
            path.clone(),
            opts,
            Box::new(move || {
                let flag = flag.clone();
                Box::pin(async move { flag.load(std::sync::atomic::Ordering::SeqCst) })
            }),
        );
        assert_eq!(rx.recv().await.unwrap(), "four\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2024-01-01T00:00:05Z stdout P fi").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write_all(b"\n2024-01-01T00:00:05Z stdout F ve\n")
            .unwrap();
        let mut got = String::new();
        while got != "five\n" {
            got.push_str(std::str::from_utf8(&rx.recv().await.unwrap()).unwrap());
        }
        f.write_all(b"2024-01-01T00:00:06Z stdout F six\n").unwrap();
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(collect(rx).await, "six\n");
    }
}
