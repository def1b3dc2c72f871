//! A fault-injecting TCP proxy in front of DynamoDB (Local), for tests that break the
//! store's writes on cue and watch what the BFF makes of it.
//!
//! It speaks just enough HTTP/1.1 to find request boundaries on keep-alive connections
//! (`Content-Length` bodies; chunked or close-delimited answers), and forwards every
//! byte unchanged. A request is a *write* when its `X-Amz-Target` names `PutItem`,
//! `UpdateItem`, `DeleteItem` or `TransactWriteItems`. Armed [`Fault`]s apply to writes
//! only, in the order they were armed:
//!
//! - [`Action::Drop`]: the connection is closed without forwarding the request, as a
//!   network failure before DynamoDB saw it;
//! - [`Action::Delay`]: the request is forwarded after a pause;
//! - [`Action::LoseAnswer`]: the request is forwarded and takes effect, then the
//!   connection is closed without returning DynamoDB's answer.
//!
//! Reads always pass. The proxy stops (its connections too) when dropped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Operations that change the table.
const WRITES: [&str; 4] = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"];
/// Longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest body accepted (DynamoDB items are at most 400 KB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What a fault does to the write it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Close the connection without forwarding the request.
    Drop,
    /// Forward the request after this pause.
    Delay(Duration),
    /// Forward the request, then close the connection without the answer.
    LoseAnswer,
}

/// How long an armed fault lasts.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// For this many writes.
    Count(usize),
    /// For every write within this period from the first write it applied to.
    For(Duration),
}

/// A fault to arm: an action, the writes it applies to and for how long.
#[derive(Debug, Clone)]
pub struct Fault {
    action: Action,
    skip: usize,
    limit: Limit,
    only: Option<String>,
}

impl Fault {
    /// Closes the connection of the next write without forwarding it.
    pub fn drop_write() -> Self {
        Self::new(Action::Drop)
    }

    /// Forwards the next write after `pause`.
    pub fn delay(pause: Duration) -> Self {
        Self::new(Action::Delay(pause))
    }

    /// Forwards the next write, then closes the connection without its answer.
    pub fn lose_answer() -> Self {
        Self::new(Action::LoseAnswer)
    }

    fn new(action: Action) -> Self {
        Self {
            action,
            skip: 0,
            limit: Limit::Count(1),
            only: None,
        }
    }

    /// Applies to `n` writes instead of one.
    pub fn times(mut self, n: usize) -> Self {
        self.limit = Limit::Count(n);
        self
    }

    /// Applies to every write during `period`, counted from the first one it applies to.
    pub fn for_period(mut self, period: Duration) -> Self {
        self.limit = Limit::For(period);
        self
    }

    /// Lets `n` matching writes pass first.
    pub fn after(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Only writes whose body contains `text` (a partition key, say) match.
    pub fn only_containing(mut self, text: &str) -> Self {
        self.only = Some(text.to_owned());
        self
    }
}

/// An armed fault and how far it got.
#[derive(Debug)]
struct Armed {
    fault: Fault,
    applied: usize,
    started: Option<Instant>,
}

impl Armed {
    /// The action for a matching write, or `None` to let it pass; `done` once used up.
    fn take(&mut self, now: Instant) -> (Option<Action>, bool) {
        if self.fault.skip > 0 {
            self.fault.skip -= 1;
            return (None, false);
        }
        match self.fault.limit {
            Limit::Count(n) => {
                self.applied += 1;
                (Some(self.fault.action), self.applied >= n)
            }
            Limit::For(period) => {
                let started = *self.started.get_or_insert(now);
                if now.duration_since(started) >= period {
                    return (None, true);
                }
                self.applied += 1;
                (Some(self.fault.action), false)
            }
        }
    }
}

/// What the proxy saw and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Writes received.
    pub writes: usize,
    /// Writes dropped unforwarded.
    pub dropped: usize,
    /// Writes forwarded late.
    pub delayed: usize,
    /// Writes forwarded whose answer was withheld.
    pub answers_lost: usize,
}

#[derive(Debug, Default)]
struct State {
    armed: Vec<Armed>,
    stats: Stats,
}

impl State {
    fn decide(&mut self, body: &[u8]) -> Option<Action> {
        self.stats.writes += 1;
        let now = Instant::now();
        let text = String::from_utf8_lossy(body);
        let index = self
            .armed
            .iter()
            .position(|a| a.fault.only.as_deref().is_none_or(|needle| text.contains(needle)))?;
        let (action, done) = self.armed[index].take(now);
        if done {
            self.armed.remove(index);
        }
        match action? {
            Action::Drop => self.stats.dropped += 1,
            Action::Delay(_) => self.stats.delayed += 1,
            Action::LoseAnswer => self.stats.answers_lost += 1,
        }
        action
    }
}

/// A running proxy.
pub struct FaultProxy {
    /// Its endpoint (`http://127.0.0.1:<port>`), to give the BFF as DynamoDB's.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `target`
    /// (`http://host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fault proxy");
        Self::serve(listener, target)
    }

    /// Serves on `listener` (a fixed port, say), forwarding to `target`.
    pub fn serve(listener: TcpListener, target: &str) -> Self {
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let target = target
            .strip_prefix("http://")
            .unwrap_or(target)
            .trim_end_matches('/')
            .to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so stopping the proxy stops them too.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        let _ = client.set_nodelay(true);
                        connections.spawn(connection(client, target.clone(), shared.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Self { endpoint, state, task }
    }

    /// Arms `fault` behind those already armed.
    pub fn arm(&self, fault: Fault) {
        self.lock().armed.push(Armed {
            fault,
            applied: 0,
            started: None,
        });
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        self.lock().armed.clear();
    }

    /// What it saw and did so far.
    pub fn stats(&self) -> Stats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/1.1 message as read off the wire: its bytes unchanged, and what framing
/// needs from its head.
struct Message {
    bytes: Vec<u8>,
    body_start: usize,
    /// `X-Amz-Target`'s operation (after the last dot), for requests.
    operation: Option<String>,
    /// The peer asked to close the connection after this message.
    close: bool,
}

impl Message {
    fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }

    fn is_write(&self) -> bool {
        self.operation.as_deref().is_some_and(|op| WRITES.contains(&op))
    }
}

/// Serves one client connection: request by request, each on the connection to the
/// target this client connection owns.
async fn connection(client: TcpStream, target: String, state: Arc<Mutex<State>>) {
    let (client_read, mut client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    let mut upstream: Option<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    )> = None;
    loop {
        let Ok(Some(request)) = read_message(&mut client_read, None).await else {
            return;
        };
        let action = if request.is_write() {
            state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .decide(request.body())
        } else {
            None
        };
        match action {
            Some(Action::Drop) => return,
            Some(Action::Delay(pause)) => tokio::time::sleep(pause).await,
            _ => {}
        }
        if upstream.is_none() {
            let Ok(stream) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let (read, write) = stream.into_split();
            upstream = Some((BufReader::new(read), write));
        }
        let Some((upstream_read, upstream_write)) = upstream.as_mut() else {
            return;
        };
        if upstream_write.write_all(&request.bytes).await.is_err() {
            return;
        }
        let Ok(Some(response)) = read_message(upstream_read, Some(&request)).await else {
            return;
        };
        if action == Some(Action::LoseAnswer) {
            return;
        }
        if client_write.write_all(&response.bytes).await.is_err() || response.close || request.close {
            return;
        }
    }
}

/// Reads one message; a response when `request` is given (it decides whether a body may
/// follow). `None` at a clean end of the stream before a message began.
async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    request: Option<&Message>,
) -> std::io::Result<Option<Message>> {
    let mut bytes = Vec::new();
    loop {
        let before = bytes.len();
        let read = reader.read_until(b'\n', &mut bytes).await?;
        if read == 0 {
            return if bytes.is_empty() { Ok(None) } else { Err(truncated()) };
        }
        if bytes.len() > MAX_HEAD {
            return Err(std::io::Error::other("head too long"));
        }
        let line = &bytes[before..];
        // Blank lines before a request line are tolerated (RFC 9112 §2.2).
        if (line == b"\r\n" || line == b"\n") && before > 0 {
            break;
        }
        if line == b"\r\n" || line == b"\n" {
            bytes.clear();
        }
    }
    let body_start = bytes.len();
    let head = String::from_utf8_lossy(&bytes).into_owned();
    let mut lines = head.lines();
    let start_line = lines.next().unwrap_or_default().to_owned();
    let mut content_length = None;
    let mut chunked = false;
    let mut operation = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| std::io::Error::other("bad length"))?,
                );
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "x-amz-target" => operation = value.rsplit('.').next().map(str::to_owned),
            _ => {}
        }
    }
    let no_body = request.is_some_and(|_| {
        let status = start_line.split_whitespace().nth(1).unwrap_or_default();
        status.starts_with('1') || status == "204" || status == "304"
    });
    if no_body {
    } else if chunked {
        read_chunked(reader, &mut bytes).await?;
    } else if let Some(length) = content_length {
        if length > MAX_BODY {
            return Err(std::io::Error::other("body too long"));
        }
        let start = bytes.len();
        bytes.resize(start + length, 0);
        reader.read_exact(&mut bytes[start..]).await?;
    } else if request.is_some() {
        // A response without framing ends with the connection.
        reader.read_to_end(&mut bytes).await?;
        close = true;
    }
    Ok(Some(Message {
        bytes,
        body_start,
        operation,
        close,
    }))
}

/// Copies a chunked body (sizes, data, trailers) into `bytes`.
async fn read_chunked<R: AsyncRead + Unpin>(reader: &mut BufReader<R>, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let start = bytes.len();
        if reader.read_until(b'\n', bytes).await? == 0 {
            return Err(truncated());
        }
        let line = String::from_utf8_lossy(&bytes[start..]);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let start = bytes.len();
                if reader.read_until(b'\n', bytes).await? == 0 {
                    return Err(truncated());
                }
                if matches!(&bytes[start..], b"\r\n" | b"\n") {
                    return Ok(());
                }
            }
        }
        if bytes.len() + size > MAX_BODY {
            return Err(std::io::Error::other("body too long"));
        }
        let start = bytes.len();
        bytes.resize(start + size + 2, 0);
        reader.read_exact(&mut bytes[start..]).await?;
    }
}

fn truncated() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "message cut short")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(text: &str, response: bool) -> Message {
        let mut reader = BufReader::new(text.as_bytes());
        let request = Message {
            bytes: Vec::new(),
            body_start: 0,
            operation: None,
            close: false,
        };
        read_message(&mut reader, response.then_some(&request))
            .await
            .expect("read")
            .expect("message")
    }

    #[tokio::test]
    async fn requests_are_framed_by_content_length_and_named_by_target() {
        let text = "POST / HTTP/1.1\r\nX-Amz-Target: DynamoDB_20120810.PutItem\r\nContent-Length: 4\r\n\r\nbodyPOST";
        let message = parse(text, false).await;
        assert_eq!(message.body(), b"body");
        assert!(message.is_write());
        let read = parse(
            "POST / HTTP/1.1\r\nx-amz-target: DynamoDB_20120810.GetItem\r\n\r\n",
            false,
        )
        .await;
        assert!(!read.is_write());
    }

    #[tokio::test]
    async fn chunked_answers_are_read_to_their_end() {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP";
        let message = parse(text, true).await;
        assert!(message.bytes.ends_with(b"0\r\n\r\n"));
    }

    #[test]
    fn a_fault_skips_then_applies_then_is_used_up() {
        let mut state = State::default();
        state.armed.push(Armed {
            fault: Fault::drop_write().after(1).times(2).only_containing("key"),
            applied: 0,
            started: None,
        });
        assert_eq!(state.decide(b"other"), None);
        assert_eq!(state.decide(b"key"), None, "skipped");
        assert_eq!(state.decide(b"key"), Some(Action::Drop));
        assert_eq!(state.decide(b"key"), Some(Action::Drop));
        assert_eq!(state.decide(b"key"), None, "used up");
        assert_eq!(state.stats.dropped, 2);
        assert_eq!(state.stats.writes, 5);
    }
}
