//! The log-processor Lambda function: not implemented yet.

fn main() {
    eprintln!("tollgate log-processor: not implemented yet");
    std::process::exit(1);
}
