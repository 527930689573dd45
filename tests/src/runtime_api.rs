//! A stand-in for the Lambda Runtime API, to run a function's real binary
//! the way Lambda does: the process polls `invocation/next`, gets an event,
//! and posts a response or an error. Events are served one at a time, in
//! order; the process is killed when they are done.
//!
//! Only loopback is used. Each call gets its own port.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// How long one event may take, start-up included.
const PER_EVENT: Duration = Duration::from_secs(60);

/// What the binary answered to each event (`Ok`: the response body,
/// `Err`: the error body it posted), and everything it logged.
#[derive(Debug)]
pub struct Run {
    pub results: Vec<Result<Value, Value>>,
    pub logs: String,
}

/// Runs `binary` under the runtime API stand-in and feeds it `events`.
pub fn invoke_binary(
    binary: &str,
    env: &[(&str, &str)],
    events: &[Value],
) -> Vec<Result<Value, Value>> {
    run_binary(binary, env, events).results
}

/// Like [`invoke_binary`], also returning the process's stdout and stderr.
pub fn run_binary(binary: &str, env: &[(&str, &str)], events: &[Value]) -> Run {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind loopback: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local addr: {e}"));
    let queue = Arc::new(Mutex::new(events.iter().cloned().collect::<VecDeque<_>>()));
    let (done_tx, done_rx) = mpsc::channel::<Outcome>();
    let (next_tx, next_rx) = mpsc::channel::<()>();
    let next_rx = Arc::new(Mutex::new(next_rx));

    {
        let queue = queue.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (queue, done_tx, next_rx) = (queue.clone(), done_tx.clone(), next_rx.clone());
                std::thread::spawn(move || serve(stream, &queue, &done_tx, &next_rx));
            }
        });
    }

    let log_path = std::env::temp_dir().join(format!(
        "tollgate-runtime-{}-{}.log",
        std::process::id(),
        addr.port()
    ));
    let log_file = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
    let mut child: Child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
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
    for _ in events {
        // Release one event to the next `next` call, then wait for its outcome.
        let _ = next_tx.send(());
        match done_rx.recv_timeout(PER_EVENT) {
            Ok(Outcome::Response(v)) => results.push(Ok(v)),
            Ok(Outcome::Error(v)) => results.push(Err(v)),
            Ok(Outcome::InitError(v)) => {
                results.push(Err(v));
                break;
            }
            Err(_) => {
                let exited = child.try_wait().ok().flatten();
                let _ = child.kill();
                let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("{binary} gave no answer within {PER_EVENT:?} (exit status: {exited:?}); logs:\n{logs}");
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    Run { results, logs }
}

enum Outcome {
    Response(Value),
    Error(Value),
    InitError(Value),
}

fn serve(
    stream: TcpStream,
    queue: &Mutex<VecDeque<Value>>,
    done: &mpsc::Sender<Outcome>,
    next: &Mutex<mpsc::Receiver<()>>,
) {
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    let mut counter = 0u64;
    loop {
        let Some((method, path, body)) = read_request(&mut reader) else {
            return;
        };
        let json = || {
            serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            // Wait until the test releases the next event; none left: hang until killed.
            let released = next.lock().map(|rx| rx.recv().is_ok()).unwrap_or(false);
            let event = if released {
                queue.lock().ok().and_then(|mut q| q.pop_front())
            } else {
                None
            };
            let Some(event) = event else {
                std::thread::sleep(Duration::from_secs(3600));
                return;
            };
            counter += 1;
            let body = event.to_string();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() + 30_000)
                .unwrap_or(0);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-{counter}-{}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:local-a:000000000000:function:tollgate-test\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\ncontent-length: {}\r\n\r\n",
                std::process::id(),
                body.len()
            );
            if writer
                .write_all(head.as_bytes())
                .and_then(|_| writer.write_all(body.as_bytes()))
                .is_err()
            {
                return;
            }
        } else {
            let outcome = if path.ends_with("/response") {
                Some(Outcome::Response(json()))
            } else if path.ends_with("/init/error") {
                Some(Outcome::InitError(json()))
            } else if path.ends_with("/error") {
                Some(Outcome::Error(json()))
            } else {
                None
            };
            let status = if outcome.is_some() {
                "202 Accepted"
            } else {
                "404 Not Found"
            };
            if let Some(o) = outcome {
                let _ = done.send(o);
            }
            let reply = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}");
            if writer.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Reads one HTTP/1.1 request: method, path and body (content-length or chunked).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, body))
}
