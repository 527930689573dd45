//! A small stand-in for the Lambda runtime API (the part a function uses:
//! `next`, `response`, `error`, `init/error`), so the real binary can be
//! run and invoked on loopback, as `cargo lambda watch` would.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `POST .../response` with this body.
    Response(String),
    /// `POST .../error` with this body (`{"errorType":..,"errorMessage":..}`).
    Error(String),
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<(String, Vec<u8>)>,
    answers: HashMap<String, Answer>,
    first_next: Option<Instant>,
    init_error: Option<String>,
}

/// The stand-in, listening on a free loopback port.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    pub addr: String,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
    next_id: Arc<AtomicU64>,
}

impl RuntimeApi {
    /// Starts listening.
    pub fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let api = RuntimeApi {
            addr,
            state: Arc::default(),
            stop: Arc::default(),
            next_id: Arc::default(),
        };
        let server = api.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if server.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = server.clone();
                std::thread::spawn(move || s.serve(conn));
            }
        });
        api
    }

    /// When the function first asked for an event.
    pub fn first_next(&self) -> Option<Instant> {
        self.state.0.lock().expect("lock").first_next
    }

    /// Waits until the function asks for its first event.
    pub fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        let (lock, cv) = &*self.state;
        let guard = lock.lock().expect("lock");
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| {
                s.first_next.is_none() && s.init_error.is_none()
            })
            .expect("wait");
        guard.first_next
    }

    /// The body of an `init/error` report, if the function sent one.
    pub fn init_error(&self) -> Option<String> {
        self.state.0.lock().expect("lock").init_error.clone()
    }

    /// Hands `event` to the function and waits for its answer.
    pub fn invoke(&self, event: &[u8], timeout: Duration) -> Option<Answer> {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let (lock, cv) = &*self.state;
        let mut guard = lock.lock().expect("lock");
        guard.queue.push_back((id.clone(), event.to_vec()));
        cv.notify_all();
        let (mut guard, _) = cv
            .wait_timeout_while(guard, timeout, |s| !s.answers.contains_key(&id))
            .expect("wait");
        guard.answers.remove(&id)
    }

    /// Stops answering `next` (a waiting function then sees a closed connection).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.1.notify_all();
        let _ = TcpStream::connect(&self.addr);
    }

    fn serve(&self, conn: TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().expect("clone"));
        let mut writer = conn;
        loop {
            let Some((method, path, body)) = read_request(&mut reader) else {
                return;
            };
            let (status, headers, body) = self.route(&method, &path, body);
            let mut head = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
                return;
            }
            let _ = writer.flush();
        }
    }

    fn route(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> (String, Vec<(String, String)>, Vec<u8>) {
        let (lock, cv) = &*self.state;
        let accepted = || ("202 Accepted".to_owned(), vec![], b"{}".to_vec());
        match (method, path) {
            ("GET", "/2018-06-01/runtime/invocation/next") => {
                let mut guard = lock.lock().expect("lock");
                if guard.first_next.is_none() {
                    guard.first_next = Some(Instant::now());
                    cv.notify_all();
                }
                loop {
                    if self.stop.load(Ordering::SeqCst) {
                        return ("500 Internal Server Error".into(), vec![], b"{}".to_vec());
                    }
                    if let Some((id, event)) = guard.queue.pop_front() {
                        let deadline = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_millis() + 30_000)
                            .unwrap_or(0);
                        return (
                            "200 OK".into(),
                            vec![
                                ("lambda-runtime-aws-request-id".into(), id),
                                ("lambda-runtime-deadline-ms".into(), deadline.to_string()),
                                (
                                    "lambda-runtime-invoked-function-arn".into(),
                                    "arn:aws:lambda:local-a:123456789012:function:authorizer"
                                        .into(),
                                ),
                                (
                                    "lambda-runtime-trace-id".into(),
                                    "Root=1-00000000-000000000000000000000000".into(),
                                ),
                            ],
                            event,
                        );
                    }
                    guard = cv
                        .wait_timeout(guard, Duration::from_millis(200))
                        .expect("wait")
                        .0;
                }
            }
            ("POST", "/2018-06-01/runtime/init/error") => {
                let mut guard = lock.lock().expect("lock");
                guard.init_error = Some(String::from_utf8_lossy(&body).into_owned());
                cv.notify_all();
                accepted()
            }
            ("POST", p) if p.starts_with("/2018-06-01/runtime/invocation/") => {
                let rest = &p["/2018-06-01/runtime/invocation/".len()..];
                let text = String::from_utf8_lossy(&body).into_owned();
                let answer = match rest.rsplit_once('/') {
                    Some((id, "response")) => Some((id.to_owned(), Answer::Response(text))),
                    Some((id, "error")) => Some((id.to_owned(), Answer::Error(text))),
                    _ => None,
                };
                match answer {
                    Some((id, answer)) => {
                        let mut guard = lock.lock().expect("lock");
                        guard.answers.insert(id, answer);
                        cv.notify_all();
                        accepted()
                    }
                    None => ("404 Not Found".into(), vec![], b"{}".to_vec()),
                }
            }
            _ => ("404 Not Found".into(), vec![], b"{}".to_vec()),
        }
    }
}

/// Reads one HTTP/1.1 request: method, path and body (content-length or chunked).
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "content-length" {
                length = v.parse().ok()?;
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t).ok()? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            chunk.truncate(size);
            body.extend(chunk);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).ok()?;
    }
    Some((method, path, body))
}
