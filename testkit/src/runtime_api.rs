//! A stand-in for the Lambda Runtime API (the part a function uses:
//! `invocation/next`, `invocation/{id}/response`, `invocation/{id}/error`,
//! `init/error`), served by `hyper` on a free loopback port, so that a
//! function's real binary can be run and invoked the way Lambda does.
//!
//! [`RuntimeApi`] hands events to whatever process polls it and waits for
//! the answers; [`run_binary`] starts a binary against a fresh stand-in,
//! feeds it events one at a time, in order, and kills it when they are done.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::Notify;

/// The path prefix of every Runtime API call.
const PREFIX: &str = "/2018-06-01/runtime/";

/// The function ARN handed out with each event.
const FUNCTION_ARN: &str = "arn:aws:lambda:local-a:123456789012:function:tollgate-test";

/// How long one event may take in [`run_binary`], start-up included.
const PER_EVENT: Duration = Duration::from_secs(60);

/// What the function answered to one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `POST .../response` with this body.
    Response(String),
    /// `POST .../error` with this body (`{"errorType":..,"errorMessage":..}`).
    Error(String),
}

/// What waiting for an invocation's answer ended with.
#[derive(Debug)]
enum Waited {
    Answer(Answer),
    InitError(String),
    GaveUp,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<(String, Vec<u8>)>,
    answers: HashMap<String, Answer>,
    first_next: Option<Instant>,
    init_error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the callers of [`RuntimeApi`] waiting for an answer.
    answered: Condvar,
    /// Wakes the `next` calls waiting for an event.
    queued: Notify,
    stopped: AtomicBool,
    next_id: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stand-in, listening on a free loopback port until [`RuntimeApi::stop`].
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub addr: String,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    /// Starts listening (on its own thread and runtime, so that it serves
    /// while the caller blocks).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start() -> RuntimeApi {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the bound address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("a non-blocking listener: {e}"));
        let shared = Arc::new(Shared::default());
        let server = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("the stand-in's runtime: {e}"));
            runtime.block_on(serve(listener, server));
        });
        RuntimeApi {
            addr: addr.to_string(),
            shared,
        }
    }

    /// When the function first asked for an event.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.lock().first_next
    }

    /// Waits until the function asks for its first event (or reports an
    /// init error); when it did, the time of that first `next`.
    pub fn wait_first_next(&self, timeout: Duration) -> Option<Instant> {
        let guard = self.shared.lock();
        let (guard, _) = self
            .shared
            .answered
            .wait_timeout_while(guard, timeout, |s| {
                s.first_next.is_none() && s.init_error.is_none()
            })
            .unwrap_or_else(|e| e.into_inner());
        guard.first_next
    }

    /// The body of an `init/error` report, if the function sent one.
    pub fn init_error(&self) -> Option<String> {
        self.shared.lock().init_error.clone()
    }

    /// Hands `event` to the function and waits up to `timeout` for its answer.
    pub fn invoke(&self, event: &[u8], timeout: Duration) -> Option<Answer> {
        match self.invoke_until(event, timeout, || false) {
            Waited::Answer(answer) => Some(answer),
            Waited::InitError(_) | Waited::GaveUp => None,
        }
    }

    /// Hands `event` to the function and waits for its answer, an init
    /// error, `timeout`, or `give_up()` (checked every 100 ms).
    fn invoke_until(
        &self,
        event: &[u8],
        timeout: Duration,
        mut give_up: impl FnMut() -> bool,
    ) -> Waited {
        let id = format!(
            "req-{}-{}",
            std::process::id(),
            self.shared.next_id.fetch_add(1, Ordering::SeqCst)
        );
        self.shared
            .lock()
            .queue
            .push_back((id.clone(), event.to_vec()));
        self.shared.queued.notify_waiters();
        let deadline = Instant::now() + timeout;
        let mut guard = self.shared.lock();
        loop {
            if let Some(answer) = guard.answers.remove(&id) {
                return Waited::Answer(answer);
            }
            if let Some(init) = &guard.init_error {
                return Waited::InitError(init.clone());
            }
            let now = Instant::now();
            if now >= deadline || give_up() {
                return Waited::GaveUp;
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            guard = self
                .shared
                .answered
                .wait_timeout(guard, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stops serving: a waiting `next` gets a 500, new connections are refused.
    pub fn stop(&self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.queued.notify_waiters();
        self.shared.answered.notify_all();
    }
}

/// Accepts connections until the stand-in is stopped.
async fn serve(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stopped = shared.queued.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let conn = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut stopped => continue,
        };
        let Ok((stream, _)) = conn else { continue };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, request).await) }
            });
            // A connection the function drops (or a killed process) just ends.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers one Runtime API call.
async fn route(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let Some(call) = path.strip_prefix(PREFIX) else {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    };
    if method == Method::GET && call == "invocation/next" {
        return next(shared).await;
    }
    if method != Method::POST {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, Vec::new()),
    };
    let mut state = shared.lock();
    if call == "init/error" {
        state.init_error = Some(body);
    } else {
        let answer = match call
            .strip_prefix("invocation/")
            .and_then(|rest| rest.rsplit_once('/'))
        {
            Some((id, "response")) => (id.to_owned(), Answer::Response(body)),
            Some((id, "error")) => (id.to_owned(), Answer::Error(body)),
            _ => return reply(StatusCode::NOT_FOUND, Vec::new()),
        };
        state.answers.insert(answer.0, answer.1);
    }
    drop(state);
    shared.answered.notify_all();
    reply(StatusCode::ACCEPTED, Vec::new())
}

/// `invocation/next`: waits for the next event (forever, if none comes
/// before the stand-in stops).
async fn next(shared: &Shared) -> Response<Full<Bytes>> {
    {
        let mut state = shared.lock();
        if state.first_next.is_none() {
            state.first_next = Some(Instant::now());
            shared.answered.notify_all();
        }
    }
    loop {
        let queued = shared.queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        if shared.stopped.load(Ordering::SeqCst) {
            return reply(StatusCode::INTERNAL_SERVER_ERROR, Vec::new());
        }
        let event = shared.lock().queue.pop_front();
        if let Some((id, event)) = event {
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 30_000)
                .unwrap_or(0);
            let mut response = reply(StatusCode::OK, event);
            let headers = response.headers_mut();
            for (name, value) in [
                ("lambda-runtime-aws-request-id", id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    FUNCTION_ARN.to_owned(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
                ),
            ] {
                if let Ok(value) = value.parse() {
                    headers.insert(name, value);
                }
            }
            return response;
        }
        queued.await;
    }
}

/// A JSON response (`{}` when `body` is empty).
fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let body = if body.is_empty() {
        b"{}".to_vec()
    } else {
        body
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = "application/json".parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

/// What the binary answered to each event (`Ok`: the response body,
/// `Err`: the error body it posted, or its init error), and everything it
/// logged.
#[derive(Debug)]
pub struct Run {
    /// One result per event answered, in order (an init error ends the run).
    pub results: Vec<Result<Value, Value>>,
    /// The process's stdout and stderr.
    pub logs: String,
}

/// Runs `binary` under the stand-in and feeds it `events`; the answers.
pub fn invoke_binary(
    binary: &str,
    env: &[(&str, &str)],
    events: &[Value],
) -> Vec<Result<Value, Value>> {
    run_binary(binary, env, events).results
}

/// Like [`invoke_binary`], also returning the process's stdout and stderr.
///
/// # Panics
/// When the binary cannot start, or gives no answer to an event within a
/// minute (or exits without one): the message holds its logs.
pub fn run_binary(binary: &str, env: &[(&str, &str)], events: &[Value]) -> Run {
    let api = RuntimeApi::start();
    let log_path = std::env::temp_dir().join(format!(
        "tollgate-runtime-{}-{}.log",
        std::process::id(),
        api.addr.rsplit(':').next().unwrap_or("0")
    ));
    let log_file = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
    let mut child: Child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "tollgate-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tollgate-test")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .unwrap_or_else(|e| panic!("log file: {e}")),
        )
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {binary}: {e}"));

    let mut results = Vec::new();
    for event in events {
        let mut exited = None;
        let give_up = || {
            exited = child.try_wait().ok().flatten();
            exited.is_some()
        };
        match api.invoke_until(event.to_string().as_bytes(), PER_EVENT, give_up) {
            Waited::Answer(Answer::Response(body)) => results.push(Ok(json_or_text(&body))),
            Waited::Answer(Answer::Error(body)) => results.push(Err(json_or_text(&body))),
            Waited::InitError(body) => {
                results.push(Err(json_or_text(&body)));
                break;
            }
            Waited::GaveUp => {
                let _ = child.kill();
                let _ = child.wait();
                api.stop();
                let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "{binary} gave no answer within {PER_EVENT:?} (exit status: {exited:?}); logs:\n{logs}"
                );
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    api.stop();
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    Run { results, logs }
}

/// A body as JSON, or as a JSON string when it is not JSON.
fn json_or_text(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
}
